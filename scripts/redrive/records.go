package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/walbridge/walbridge/capture/putrecords"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
)

// failureRecord is the JSON document Lambda sends to a Kinesis event source
// mapping's on-failure destination for a batch it gave up on. It points at
// the records (shard and sequence numbers); it does not hold them.
type failureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"` // RetryAttemptsExhausted, RecordAgeExceeded, ...
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"` // Handled, Unhandled, or empty
	} `json:"responseContext"`
	Version          string     `json:"version"`
	Timestamp        string     `json:"timestamp"`
	KinesisBatchInfo *batchInfo `json:"KinesisBatchInfo"`
}

// batchInfo locates the failed batch in the stream.
type batchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamArn                       string `json:"streamArn"`
}

// parseFailure reads a dead-letter message body. Anything but a Kinesis
// failure record (a DynamoDB one, or a message someone else sent) is an
// error.
func parseFailure(body string) (failureRecord, error) {
	var f failureRecord
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		return f, fmt.Errorf("not a Lambda failure record: %w", err)
	}
	b := f.KinesisBatchInfo
	if b == nil {
		return f, errors.New("not a Kinesis failure record: no KinesisBatchInfo")
	}
	if b.ShardID == "" || !isSequenceNumber(b.StartSequenceNumber) || !isSequenceNumber(b.EndSequenceNumber) || b.StreamArn == "" {
		return f, errors.New("KinesisBatchInfo lacks shardId, streamArn or valid sequence numbers")
	}
	if seqLess(b.EndSequenceNumber, b.StartSequenceNumber) {
		return f, fmt.Errorf("endSequenceNumber %s is before startSequenceNumber %s", b.EndSequenceNumber, b.StartSequenceNumber)
	}
	return f, nil
}

func isSequenceNumber(s string) bool {
	if s == "" || len(s) > 129 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// seqLess orders Kinesis sequence numbers: decimal integers of up to 129
// digits, without leading zeros.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// streamName is the name in a stream ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME), which must be in region:
// the client addresses streams by name, in its own region.
func streamName(arn, region string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") {
		return "", fmt.Errorf("%q is not a Kinesis stream ARN", arn)
	}
	if parts[3] != region {
		return "", fmt.Errorf("stream %s is in %s, but the AWS config's region is %s (set AWS_REGION)", arn, parts[3], region)
	}
	name := strings.TrimPrefix(parts[5], "stream/")
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is not a Kinesis stream ARN", arn)
	}
	return name, nil
}

// streamRecord is one record of a failed batch, read back from the stream.
type streamRecord struct {
	Shard, Seq, PartitionKey string
	Arrival                  time.Time
	Data                     []byte
	Decoded                  *change.Record
	DecodeErr                error
}

// kinesisAPI is the part of the Kinesis client redrive uses.
type kinesisAPI interface {
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// getRecordsLimit is the most records one GetRecords call asks for, and
// maxReads bounds the calls for one batch (each returns records, or
// confirms the shard's end).
const (
	getRecordsLimit = 1000
	maxReads        = 1000
)

// fetchBatch reads the records from b's start to its end sequence number
// (both included) with AT_SEQUENCE_NUMBER. The records come back even with
// an error that says the range is incomplete: its start expired from the
// stream, or the shard ended before its end.
func fetchBatch(ctx context.Context, api kinesisAPI, stream string, b *batchInfo) ([]streamRecord, error) {
	it, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:             aws.String(stream),
		ShardId:                aws.String(b.ShardID),
		ShardIteratorType:      types.ShardIteratorTypeAtSequenceNumber,
		StartingSequenceNumber: aws.String(b.StartSequenceNumber),
	})
	if err != nil {
		return nil, fmt.Errorf("shard iterator at %s on %s: %w", b.StartSequenceNumber, b.ShardID, err)
	}
	var recs []streamRecord
	iter := it.ShardIterator
	for reads := 0; iter != nil && reads < maxReads; reads++ {
		out, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(getRecordsLimit)})
		if err != nil {
			return recs, fmt.Errorf("read %s: %w", b.ShardID, err)
		}
		for _, r := range out.Records {
			seq := aws.ToString(r.SequenceNumber)
			if seqLess(b.EndSequenceNumber, seq) {
				return recs, checkStart(recs, b)
			}
			rec := streamRecord{Shard: b.ShardID, Seq: seq, PartitionKey: aws.ToString(r.PartitionKey), Arrival: aws.ToTime(r.ApproximateArrivalTimestamp).UTC(), Data: r.Data}
			rec.Decoded, rec.DecodeErr = change.Decode(r.Data)
			recs = append(recs, rec)
			if seq == b.EndSequenceNumber {
				return recs, checkStart(recs, b)
			}
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		iter = out.NextShardIterator
	}
	return recs, fmt.Errorf("%s ended before sequence number %s (%d records read)", b.ShardID, b.EndSequenceNumber, len(recs))
}

func checkStart(recs []streamRecord, b *batchInfo) error {
	if len(recs) == 0 || recs[0].Seq != b.StartSequenceNumber {
		return fmt.Errorf("the batch's first record %s is no longer in the stream (past its retention?)", b.StartSequenceNumber)
	}
	return nil
}

// putter writes records back to a stream in order per partition key: a
// key never has two records in flight (one request at a time, each with at
// most one record of a key), and a record that fails is sent again before
// anything later of its key.
type putter struct {
	api     kinesisAPI
	backoff backoff.Policy
	// maxAttempts bounds the requests in a row that make no progress.
	maxAttempts int
	sleep       func(context.Context, time.Duration) error
}

// put sends recs (in order) to stream, calling acked with the index of each
// record Kinesis accepted, as soon as it did.
func (p *putter) put(ctx context.Context, stream string, recs []*streamRecord, acked func(i int)) error {
	pending := make([]int, len(recs))
	for i := range pending {
		pending[i] = i
	}
	failures := 0
	for len(pending) > 0 {
		batch := nextRequest(recs, pending)
		in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
		for _, i := range batch {
			in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: recs[i].Data, PartitionKey: aws.String(recs[i].PartitionKey)})
		}
		out, err := p.api.PutRecords(ctx, in)
		done := map[int]bool{}
		var reason string
		if err != nil {
			reason = err.Error()
		} else {
			for j, res := range out.Records {
				if j < len(batch) && aws.ToString(res.ErrorCode) == "" {
					done[batch[j]] = true
					acked(batch[j])
				} else if reason == "" {
					reason = aws.ToString(res.ErrorCode) + ": " + aws.ToString(res.ErrorMessage)
				}
			}
		}
		kept := pending[:0]
		for _, i := range pending {
			if !done[i] {
				kept = append(kept, i)
			}
		}
		pending = kept
		if len(done) > 0 {
			failures = 0
			continue
		}
		if len(pending) == 0 {
			break
		}
		failures++
		if failures >= p.maxAttempts {
			return fmt.Errorf("PutRecords to %s failed %d times in a row (last: %s); %d records not put back", stream, failures, reason, len(pending))
		}
		if err := p.sleep(ctx, p.backoff.Delay(failures-1)); err != nil {
			return err
		}
	}
	return nil
}

// nextRequest picks the records of the next PutRecords request: the first
// pending record of each partition key, in order, within Kinesis's limits
// on records and bytes per request.
func nextRequest(recs []*streamRecord, pending []int) []int {
	var batch []int
	seen := map[string]bool{}
	size := 0
	for _, i := range pending {
		r := recs[i]
		if seen[r.PartitionKey] {
			continue
		}
		seen[r.PartitionKey] = true
		n := len(r.Data) + len(r.PartitionKey)
		if len(batch) == putrecords.MaxRecordsPerRequest || (len(batch) > 0 && size+n > putrecords.MaxRequestBytes) {
			break
		}
		batch = append(batch, i)
		size += n
	}
	return batch
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if !backoff.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}
