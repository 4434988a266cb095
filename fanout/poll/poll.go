// Package poll reads a Kinesis stream the way Lambda's Kinesis event source
// mapping does, and hands batches to a handler: "fanout poll", the local
// and replay path that runs fanout's handler outside Lambda.
package poll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/walbridge/walbridge/shared/backoff"
	"go.uber.org/zap"
)

// Options are the settings of a poll (the flags of "fanout poll").
type Options struct {
	Stream       string        // name or ARN
	From         string        // where a shard without a checkpoint starts: see ParseStart
	Checkpoint   string        // file of each shard's last processed sequence number ("": memory only)
	BatchSize    int           // records per handler call
	OnFailure    string        // file of skipped records (JSON lines, without data)
	MaxRetries   int           // retries of a failing record before it is skipped
	Timeout      time.Duration // deadline of one handler call
	PollInterval time.Duration // wait between empty reads of a shard
	IdleExit     bool          // return once every shard is read to its end
}

// Handler processes one batch, as Lambda would call the function: it
// returns the response (batch item failures) and, when a record failed, why
// (words for the log and the on-failure file, without row values). An error
// is a function error: the whole batch failed.
type Handler func(context.Context, events.KinesisEvent) (resp events.KinesisEventResponse, reason string, err error)

// startPosition is where a shard without a checkpoint starts.
type startPosition struct {
	kind types.ShardIteratorType
	at   time.Time
}

// ParseStart reads From: trim-horizon, latest or an RFC 3339 time.
func ParseStart(from string) (startPosition, error) {
	switch from {
	case "trim-horizon":
		return startPosition{kind: types.ShardIteratorTypeTrimHorizon}, nil
	case "latest":
		return startPosition{kind: types.ShardIteratorTypeLatest}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return startPosition{}, fmt.Errorf("-from %q: want trim-horizon, latest or an RFC 3339 time", from)
	}
	return startPosition{kind: types.ShardIteratorTypeAtTimestamp, at: t}, nil
}

// poller reads a stream the way Lambda's Kinesis event source mapping does
// with ReportBatchItemFailures, BisectBatchOnFunctionError, a retry limit and
// an on-failure destination: shards in parallel, each in order; a batch
// item failure resumes at that record after a backoff; a record that keeps
// failing is retried in ever smaller batches and, after the retry limit,
// recorded in the on-failure file and skipped.
type poller struct {
	opts       Options
	kin        *kinesis.Client
	handle     Handler
	log        *zap.Logger
	region     string
	streamARN  string
	streamName string
	start      startPosition
	cp         *checkpoints
	backoff    backoff.Policy

	mu      sync.Mutex
	started map[string]bool
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
}

// Run polls the stream until ctx ends (or, with IdleExit, until every shard
// is read to its end) and returns the first error that stopped a shard.
// region is the events' awsRegion.
func Run(ctx context.Context, kin *kinesis.Client, region string, handle Handler, opts Options, log *zap.Logger) error {
	start, err := ParseStart(opts.From)
	if err != nil {
		return err
	}
	p := &poller{opts: opts, kin: kin, handle: handle, log: log, region: region,
		start: start, backoff: backoff.Policy{Base: 200 * time.Millisecond, Max: 30 * time.Second, Equal: true}, started: map[string]bool{}}
	return p.run(ctx)
}

func (p *poller) run(ctx context.Context) error {
	ref := &kinesis.DescribeStreamSummaryInput{}
	if strings.HasPrefix(p.opts.Stream, "arn:") {
		ref.StreamARN = aws.String(p.opts.Stream)
	} else {
		ref.StreamName = aws.String(p.opts.Stream)
	}
	desc, err := p.kin.DescribeStreamSummary(ctx, ref)
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", p.opts.Stream, err)
	}
	// Later calls name the stream by name: that works on AWS and on
	// emulators that predate the StreamARN parameters.
	p.streamARN = aws.ToString(desc.StreamDescriptionSummary.StreamARN)
	p.streamName = aws.ToString(desc.StreamDescriptionSummary.StreamName)
	if p.cp, err = loadCheckpoints(p.opts.Checkpoint, p.streamARN); err != nil {
		return err
	}
	p.log.Info("polling", zap.String("stream", p.streamARN), zap.String("from", p.opts.From), zap.String("checkpoint", p.opts.Checkpoint),
		zap.Int("batchSize", p.opts.BatchSize))
	if err := p.startShards(ctx); err != nil {
		return err
	}
	p.wg.Wait()
	return p.err
}

// startShards starts a reader for every shard not started yet. A child shard
// (after a split or merge) is read only once its parents are finished.
func (p *poller) startShards(ctx context.Context) error {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(p.streamName)}
	for {
		out, err := p.kin.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	known := map[string]bool{}
	for _, s := range shards {
		known[aws.ToString(s.ShardId)] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if p.started[id] || p.cp.closed(id) {
			continue
		}
		var parents []string
		for _, parent := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if parent != nil && known[*parent] && !p.cp.closed(*parent) {
				parents = append(parents, *parent)
			}
		}
		if len(parents) > 0 {
			continue // started when its parents close
		}
		p.started[id] = true
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := p.readShard(ctx, id); err != nil {
				p.errOnce.Do(func() { p.err = err })
			}
		}()
	}
	return nil
}

// readShard reads one shard to its end (or, with idleExit, to its tip).
func (p *poller) readShard(ctx context.Context, shard string) error {
	log := p.log.With(zap.String("shard", shard))
	iter, err := p.iterator(ctx, shard)
	if err != nil {
		return err
	}
	failures := 0
	for ctx.Err() == nil {
		out, err := p.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(p.opts.BatchSize))})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				if iter, err = p.iterator(ctx, shard); err != nil {
					return err
				}
				continue
			}
			failures++
			log.Warn("GetRecords failed; retrying", zap.Error(err), zap.Int("failures", failures))
			backoff.Sleep(ctx, p.backoff.Delay(failures-1))
			continue
		}
		failures = 0
		if len(out.Records) > 0 {
			if err := p.deliver(ctx, shard, out.Records); err != nil {
				return err
			}
		}
		if out.NextShardIterator == nil {
			log.Info("shard closed")
			if err := p.cp.close(shard); err != nil {
				return err
			}
			return p.startShards(ctx)
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 {
			if p.opts.IdleExit && aws.ToInt64(out.MillisBehindLatest) == 0 {
				log.Info("shard read to its tip; exiting (-idle-exit)")
				return nil
			}
			backoff.Sleep(ctx, p.opts.PollInterval)
		}
	}
	return nil
}

// iterator starts after the shard's checkpoint, or at the start position.
func (p *poller) iterator(ctx context.Context, shard string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(p.streamName), ShardId: aws.String(shard), ShardIteratorType: p.start.kind}
	if seq := p.cp.sequence(shard); seq != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	} else if p.start.kind == types.ShardIteratorTypeAtTimestamp {
		in.Timestamp = aws.Time(p.start.at)
	}
	out, err := p.kin.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("shard iterator for %s: %w", shard, err)
	}
	return out.ShardIterator, nil
}

// deliver hands records to the handler until every one is processed or
// skipped, checkpointing as it goes. A failure resumes at the first record
// not done, after a backoff; from the second failure in a row at the same
// record the batch is halved each time (bisection), so that a record that
// keeps failing ends up alone, whatever the handler blamed; alone and past
// the retry limit, it is recorded in the on-failure file and skipped. It
// returns an error only when the checkpoint or the on-failure file cannot be
// written.
func (p *poller) deliver(ctx context.Context, shard string, records []types.Record) error {
	log := p.log.With(zap.String("shard", shard))
	size := len(records)
	attempts := 0 // failed invocations in a row that did not get past records[0]
	for len(records) > 0 && ctx.Err() == nil {
		batch := records[:min(size, len(records))]
		n, reason := p.invoke(ctx, shard, batch)
		if n > 0 {
			if err := p.cp.set(shard, aws.ToString(batch[n-1].SequenceNumber)); err != nil {
				return err
			}
			records = records[n:]
			attempts = 0
		}
		if n == len(batch) {
			size = len(records)
			continue
		}
		attempts++
		seq := aws.ToString(records[0].SequenceNumber)
		if len(batch) == 1 && attempts > p.opts.MaxRetries {
			log.Error("record keeps failing; skipped to the on-failure file", zap.String("sequenceNumber", seq), zap.Int("attempts", attempts), zap.String("reason", reason))
			if err := p.recordFailure(shard, records[0], attempts, reason); err != nil {
				return err
			}
			if err := p.cp.set(shard, seq); err != nil {
				return err
			}
			records, attempts, size = records[1:], 0, len(records)-1
			continue
		}
		switch {
		case attempts == 1:
			size = len(records)
		case n == 0:
			size = max(1, len(batch)/2)
		}
		delay := p.backoff.Delay(attempts - 1)
		log.Warn("batch item failure; retrying from it", zap.String("sequenceNumber", seq), zap.Int("attempts", attempts),
			zap.Int("nextBatch", min(size, len(records))), zap.Duration("backoff", delay), zap.String("reason", reason))
		backoff.Sleep(ctx, delay)
	}
	return nil
}

// invoke calls the handler once and returns how many leading records of the
// batch are done, and why the rest is not.
func (p *poller) invoke(ctx context.Context, shard string, batch []types.Record) (int, string) {
	ev := events.KinesisEvent{Records: make([]events.KinesisEventRecord, len(batch))}
	for i, r := range batch {
		seq := aws.ToString(r.SequenceNumber)
		ev.Records[i] = events.KinesisEventRecord{
			AwsRegion: p.region, EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
			EventSourceArn: p.streamARN, EventVersion: "1.0",
			Kinesis: events.KinesisRecord{Data: r.Data, PartitionKey: aws.ToString(r.PartitionKey), SequenceNumber: seq,
				KinesisSchemaVersion: "1.0", EncryptionType: string(r.EncryptionType)},
		}
		if r.ApproximateArrivalTimestamp != nil {
			ev.Records[i].Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: *r.ApproximateArrivalTimestamp}
		}
	}
	ictx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	resp, reason, err := p.handle(ictx, ev)
	if err != nil {
		return 0, "function error: " + err.Error()
	}
	done := len(batch)
	for _, f := range resp.BatchItemFailures {
		i := -1
		for j := range batch {
			if aws.ToString(batch[j].SequenceNumber) == f.ItemIdentifier {
				i = j
				break
			}
		}
		if i < 0 {
			// Lambda treats an empty or unknown identifier as a failure of
			// the whole batch.
			return 0, fmt.Sprintf("batch item failure %q is not in the batch", f.ItemIdentifier)
		}
		done = min(done, i)
	}
	return done, reason
}

// recordFailure appends what Lambda's on-failure destination would get for
// a skipped record: where it is, not what it holds.
func (p *poller) recordFailure(shard string, r types.Record, attempts int, reason string) error {
	info := map[string]any{
		"time":                time.Now().UTC().Format(time.RFC3339Nano),
		"reason":              reason,
		"attempts":            attempts,
		"streamArn":           p.streamARN,
		"shardId":             shard,
		"startSequenceNumber": aws.ToString(r.SequenceNumber),
		"endSequenceNumber":   aws.ToString(r.SequenceNumber),
		"batchSize":           1,
	}
	if r.ApproximateArrivalTimestamp != nil {
		info["approximateArrivalOfFirstRecord"] = r.ApproximateArrivalTimestamp.UTC().Format(time.RFC3339Nano)
	}
	line, _ := json.Marshal(info)
	f, err := os.OpenFile(p.opts.OnFailure, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open on-failure file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write on-failure file: %w", err)
	}
	return f.Close()
}

// checkpoints is the -checkpoint file: per shard, the sequence number of the
// last record fully processed (or skipped), and whether the shard is
// finished. Without a file name it is kept in memory only.
type checkpoints struct {
	mu    sync.Mutex
	path  string
	state checkpointFile
}

type checkpointFile struct {
	Stream string                     `json:"stream"`
	Shards map[string]shardCheckpoint `json:"shards"`
}

type shardCheckpoint struct {
	SequenceNumber string `json:"sequenceNumber,omitempty"`
	Closed         bool   `json:"closed,omitempty"`
}

func loadCheckpoints(path, streamARN string) (*checkpoints, error) {
	c := &checkpoints{path: path, state: checkpointFile{Stream: streamARN, Shards: map[string]shardCheckpoint{}}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var f checkpointFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if f.Stream != streamARN {
		return nil, fmt.Errorf("checkpoint %s is for stream %s, not %s", path, f.Stream, streamARN)
	}
	if f.Shards != nil {
		c.state.Shards = f.Shards
	}
	return c, nil
}

func (c *checkpoints) sequence(shard string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Shards[shard].SequenceNumber
}

func (c *checkpoints) closed(shard string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Shards[shard].Closed
}

func (c *checkpoints) set(shard, seq string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state.Shards[shard]
	s.SequenceNumber = seq
	c.state.Shards[shard] = s
	return c.saveLocked()
}

func (c *checkpoints) close(shard string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state.Shards[shard]
	s.Closed = true
	c.state.Shards[shard] = s
	return c.saveLocked()
}

// saveLocked replaces the file atomically (write, sync, rename).
func (c *checkpoints) saveLocked() error {
	if c.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
