// Command replay re-delivers the change stream to fanout from an earlier
// point by replacing fanout's Kinesis event source mapping with one that
// starts there (StartingPosition can't be changed in place).
//
//	go run ./scripts/replay --function NAME --stream ARN (--from RFC3339-TIME | --trim-horizon)
//	    [--dry-run] [--yes] [--timeout 5m] [--poll-interval 2s]
//
// --stream is the mapping's event source ARN: the stream, or its enhanced
// fan-out consumer. replay finds the one mapping of --function on it and
// copies its settings (batching, parallelization, retries, record age,
// bisect, ReportBatchItemFailures, the on-failure destination, tumbling
// window, filters and their KMS key, metrics, Enabled) into the new
// mapping, which starts AT_TIMESTAMP --from or at TRIM_HORIZON. Tags are
// not copied.
//
// The steps, in this order, each waited for:
//
//  1. disable the old mapping (UpdateEventSourceMapping Enabled=false) and
//     wait until it is Disabled;
//  2. delete it and wait until it is gone;
//  3. create the new one and wait until it is Enabled.
//
// Lambda allows one mapping per function and event source: a second one is
// refused (ResourceConflictException) as long as the first exists, even
// disabled, so the new mapping can only be created after the old one is
// gone. Disabling first makes sure that no two mappings ever deliver
// concurrently, which would publish each row's changes twice at once and in
// no particular order; the price is a pause in delivery between steps 1
// and 3, while records wait in the stream.
//
// --dry-run prints the plan (every call and its parameters) after reading
// the mappings and changes nothing; without --dry-run replay needs --yes.
// Consumers see every event from the starting point again and must drop
// repeats by detail.lsn + detail.seq; replay says so every time. Region,
// credentials and endpoint come from the SDK's standard chain
// (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_LAMBDA, ...). Exit status 2 is
// a usage error or a refusal, 1 a failure.
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
