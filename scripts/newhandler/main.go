// Command newhandler writes a new consumer of walbridge DatabaseEvents: a
// Lambda handler in TypeScript or Go with its test, the EventBridge rule
// that routes the events to it, a SAM template for both, and a sample event.
//
//	go run ./scripts/newhandler --name NAME --table [SCHEMA.]TABLE[,...] --operation OP[,...]
//	    [--changed COLUMN[,...]] --language typescript|go [--out infra/handlers] [--force] [--interactive]
//
// It writes OUT/NAME/:
//
//	rule.json          the event pattern (checked with shared/pattern before it is written)
//	template.yaml      the function, the rule on the EventBusName parameter, a dead-letter queue
//	sample-event.json  an event the rule matches, as EventBridge delivers it
//	put-events.json    the same event as PutEvents entries, for the local bus (scripts/localbus)
//	handler.ts, handler.test.ts, package.json, package-lock.json, tsconfig.json   (typescript)
//	main.go, main_test.go                                                          (go)
//
// A table without a schema is in public. --changed narrows updates to those
// that change one of the columns (detail.changedValues). What is not given
// on the command line is asked on standard input when it is a terminal (or
// with --interactive); with every flag given nothing is asked. An existing
// OUT/NAME is refused unless --force.
//
// Size: about 770 lines for one command: its questions and the files it
// writes (generate.go) change together.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, isTerminal(os.Stdin)))
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
