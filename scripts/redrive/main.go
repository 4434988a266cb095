// Command redrive handles the records fanout gave up on: the messages that
// its Kinesis event source mapping sent to the on-failure (dead-letter) SQS
// queue.
//
//	go run ./scripts/redrive --queue URL [--stream ARN] (--show | --export FILE | --republish)
//	    [--max N] [--show-values] [--include-undecodable] [--visibility-timeout 10m] [--wait 2s]
//
// Each message is Lambda's failure record for one batch: why it failed
// (requestContext.condition such as RetryAttemptsExhausted or
// RecordAgeExceeded, the function error) and where the batch lies
// (KinesisBatchInfo: stream, shard, first and last sequence number). The
// records themselves are only in the stream, so redrive reads them back
// (GetShardIterator AT_SEQUENCE_NUMBER, GetRecords up to the last sequence
// number) while the stream still holds them, and reports every batch:
// condition, function error, and for each record its sequence number,
// partition key, arrival, and whether change.Decode accepts it (the
// decode error when not; the table, operation and LSN of its changes when
// it does). Row values are printed only with --show-values.
//
// --show only reports. --export FILE also writes the records to a new
// file (mode 0600: it holds row data) as JSON lines: messageId, stream,
// shard, seq, partitionKey, arrival, data (base64) and decodeError.
// --republish also puts the records back into their stream, once fanout
// is fixed: PutRecords with the same partition keys, in the original order
// (batches sorted by shard and sequence number), never two records of one
// key in flight, each failed record sent again before anything later of
// its key; a message is deleted as soon as all its records are back.
// Records this build cannot decode would fail again and are not put back
// (their message stays) unless --include-undecodable. Republished records
// come after newer changes of the same rows in the stream, so for those
// rows per-row order is not preserved; redrive warns about it.
//
// Messages that are not deleted are made visible again when redrive ends.
// --stream leaves failure records of other streams in the queue; --max
// bounds the messages taken. Region, credentials and endpoints come from
// the SDK's standard chain (AWS_REGION, AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL_KINESIS, ...); the stream must be in the configured
// region. Exit status 1 means some message could not be handled (it stays
// in the queue), 2 a usage error.
//
// Size: about 800 lines for one command with three modes (show, export,
// republish) over one reading of the on-failure queue.
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
