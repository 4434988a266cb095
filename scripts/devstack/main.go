// Command devstack is what scripts/dev runs: the whole walbridge pipeline on
// local stand-ins, in the foreground, with each part's output prefixed:
//
//	[postgres] a private cluster in .dev/ (or the database of --database-url,
//	           which setup changes only after saying how, and whose slot,
//	           if this run created it, is dropped on exit)
//	[kinesis]  the pinned Kinesis emulator, with the stream
//	[capture]  capture setup, then capture run
//	[fanout]   fanout poll, publishing to the local event bus
//	[bus]      each event as EventBridge delivers it, and the infra/ rules it matches
//
// With --demo it also plays the users table scenario and waits for its three
// events. Ctrl-C (SIGINT) or SIGTERM stops everything, in order.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "[dev] stopped with errors")
	}
	os.Exit(code)
}
