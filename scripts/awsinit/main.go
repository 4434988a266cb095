// Command awsinit is docker-compose's init step: against LocalStack (or any
// endpoint given by the SDK's AWS_ENDPOINT_URL* variables) it creates the
// Kinesis stream, the event bus, the rules of infra/template.yaml (each with
// an SQS queue as target) and deploys fanout as a Lambda function with its
// Kinesis event source mapping. scripts/dev shares its stream step
// (shared/provision) with the Kinesis emulator.
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
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "awsinit:", err)
		os.Exit(1)
	}
}
