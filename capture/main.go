// Command capture streams every committed row change of a PostgreSQL database
// (logical replication, pgoutput) into a Kinesis data stream. It is stage one
// of walbridge; fanout turns the records into EventBridge events.
//
//	capture setup     check prerequisites, create the publication and slot
//	capture status    slot, publication, risky tables, stream state
//	capture run       stream changes to Kinesis until SIGTERM/SIGINT
//	capture teardown  drop the slot (and optionally the publication)
//	capture backfill  register backfills of existing rows, list or cancel them
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: capture <command> [flags]

commands:
  setup      check wal_level, slots and rights; create the publication and slot
  status     show the slot, publication, risky tables and the stream (--json)
  run        stream changes into Kinesis until SIGTERM or SIGINT
  teardown   drop the slot (--drop-publication, --drop-schema too); needs --yes
  backfill   send the rows tables already hold (--table, --all; --list, --cancel)

Run "capture <command> -h" for the command's flags.
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "setup":
		err = cmdSetup(ctx, rest, stdout, stderr)
	case "status":
		err = cmdStatus(ctx, rest, stdout, stderr)
	case "run":
		err = cmdRun(ctx, rest, stdout, stderr)
	case "teardown":
		err = cmdTeardown(ctx, rest, stdout, stderr)
	case "backfill":
		err = cmdBackfill(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "capture: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, errHelp):
		if !errors.Is(err, errHelp) {
			fmt.Fprintf(stderr, "capture %s: %v\n", args[0], err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "capture %s: %v\n", args[0], err)
		if a := advice(err); a != "" {
			fmt.Fprintln(stderr, a)
		}
		return 1
	}
}
