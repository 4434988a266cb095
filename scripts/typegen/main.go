// Command typegen writes typed DatabaseEvents from a database's live schema:
// for each published table a JSON Schema (draft 2020-12) of its events,
// and for all of them TypeScript interfaces and Go structs.
//
//	go run ./scripts/typegen --database-url URL [--publication walbridge] [--out DIR] [--package NAME]
//
// It reads the publication's tables and column lists, or every user table
// when the publication does not exist, and writes into DIR (default
// dbevents):
//
//	SCHEMA.TABLE.schema.json   the event of one table
//	events.ts                  one Detail interface per table
//	events.go                  one Detail struct per table, package NAME (default dbevents)
//
// Run it again after a migration: the files are rewritten, and the
// .schema.json files of tables that are no longer there are removed (only
// files typegen wrote). The model is package schema, beside it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
