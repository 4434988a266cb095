package main

import (
	"errors"

	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/capture/slot"
)

// advice is what to do about a refusal, in the words of capture's own flags
// and commands. The packages that refuse return typed errors and know
// nothing of the command line; this is the one place that does.
func advice(err error) string {
	switch {
	case errors.Is(err, slot.ErrKeylessTables):
		return "Choose one:\n" +
			"  --keyless=full     give them REPLICA IDENTITY FULL (events carry complete old values)\n" +
			"  --keyless=exclude  leave them out of the publication (their changes are not captured)\n" +
			"or add a primary key to each. Add --event-trigger to apply the choice to tables created later."
	case errors.Is(err, slot.ErrCannotExclude):
		return "Recreate the publication with --tables, or use --keyless=full."
	case errors.Is(err, slot.ErrTriggerNeedsPolicy):
		return "Add --keyless=full or --keyless=exclude (or --replica-identity-full) to --event-trigger."
	case errors.Is(err, slot.ErrForeignSlot):
		return "Choose another --slot, or drop that slot."
	case errors.Is(err, replication.ErrSlotMissing):
		return "Run capture setup first (with the same --slot)."
	}
	return ""
}
