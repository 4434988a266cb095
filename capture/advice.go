package main

import (
	"errors"

	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/capture/slot"
)

// refusal reports an error that no retry cures: what the database is (its
// settings, its tables, the role's rights) or what the flags ask for must
// change first. setup publishes it as SetupRefused (--cloudwatch).
func refusal(err error) bool {
	for _, e := range []error{slot.ErrKeylessTables, slot.ErrCannotExclude, slot.ErrTriggerNeedsPolicy, slot.ErrNeedsVersion,
		slot.ErrForeignSlot, slot.ErrPrerequisite, replication.ErrNoReplicationRight, replication.ErrNoDatabase} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

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
	case errors.Is(err, slot.ErrNeedsVersion):
		return "Leave --failover out on this server (after a failover, run capture setup on the new primary and backfill: capture backfill --all)."
	case errors.Is(err, slot.ErrForeignSlot):
		return "Choose another --slot, or drop that slot."
	case errors.Is(err, replication.ErrSlotMissing):
		return "Run capture setup first (with the same --slot)."
	case errors.Is(err, replication.ErrAuthentication):
		return "Fix the user and password in DATABASE_URL (or --database-url), or the server's pg_hba.conf entry for replication connections."
	case errors.Is(err, replication.ErrNoDatabase):
		return "Fix the database name at the end of DATABASE_URL (or --database-url)."
	case errors.Is(err, replication.ErrNoReplicationRight):
		return "Grant the role of DATABASE_URL the right to replicate: ALTER ROLE <user> REPLICATION (RDS and Aurora: GRANT rds_replication TO <user>)."
	case errors.Is(err, replication.ErrPublicationMissing):
		return "Run capture setup first (with the same --publication), or fix WALBRIDGE_PUBLICATION."
	case errors.Is(err, errNoRegion):
		return "Set AWS_REGION. For a local stand-in set AWS_ENDPOINT_URL_KINESIS too (scripts/dev starts one), with AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test."
	case errors.Is(err, errNoCredentials):
		return "Give capture AWS credentials: on EC2 an instance role; elsewhere AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. For a local stand-in (AWS_ENDPOINT_URL_KINESIS) any values do, e.g. test and test."
	}
	return ""
}
