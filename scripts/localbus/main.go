// Command localbus serves a local stand-in for Amazon EventBridge, for
// development: fanout (or any EventBridge client) publishes to it with
// AWS_ENDPOINT_URL_EVENTBRIDGE, and it prints every event as EventBridge
// would deliver it, with the rules it matched, and POSTs matching events to
// the HTTP targets of dev rules. The Lambda functions that template rules
// target run locally when their code is beside their template (handlers from
// scripts/newhandler; see package shared/localfn). See package shared/localbus.
//
//	go run ./scripts/localbus [--addr 127.0.0.1:4010] [--rules infra] [--region us-east-1] [--log FILE]
//	    [--param NAME=VALUE]... [--max-attempts 5] [--max-age 1m] [--max-request-bytes 1048576]
//	    [--functions=true] [--rie bin/aws-lambda-rie] [--work-dir .dev/functions]
//
// The first line on stdout is "listening http://ADDR" (with --addr port 0 the
// system picks the port), so scripts can read where the bus is. Rules come
// from every CloudFormation/SAM template under --rules and from
// --rules/dev-rules/*.json; what was loaded or skipped, and why, goes to
// stderr. SIGINT or SIGTERM shuts it down.
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
