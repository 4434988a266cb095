package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // something could not be read or handled; see stderr
	exitUsage = 2
)

// mode is what redrive does with the records it finds.
type mode int

const (
	modeShow mode = iota
	modeExport
	modeRepublish
)

// options are redrive's flags.
type options struct {
	queue, stream      string
	mode               mode
	exportFile         string
	max                int // messages; 0 means all
	showValues         bool
	includeUndecodable bool
	visibility         time.Duration
	wait               time.Duration
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.queue, "queue", "", "URL of the on-failure (dead-letter) SQS queue")
	fs.StringVar(&o.stream, "stream", "", "handle only failure records of this stream ARN; others stay in the queue")
	show := fs.Bool("show", false, "show the failed batches and their records")
	fs.StringVar(&o.exportFile, "export", "", "also write the records to this new file as JSON lines (with row data)")
	republish := fs.Bool("republish", false, "also put the records back into the stream, then delete their messages")
	fs.IntVar(&o.max, "max", 0, "handle at most this many messages (0: all)")
	fs.BoolVar(&o.showValues, "show-values", false, "also print each record's data, row values included")
	fs.BoolVar(&o.includeUndecodable, "include-undecodable", false, "with --republish, also put back records this build cannot decode")
	fs.DurationVar(&o.visibility, "visibility-timeout", 10*time.Minute, "how long received messages stay hidden from other readers while redrive works")
	fs.DurationVar(&o.wait, "wait", 2*time.Second, "long-poll time of each ReceiveMessage (0 to 20s)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	modes := 0
	for _, set := range []bool{*show, o.exportFile != "", *republish} {
		if set {
			modes++
		}
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.queue == "":
		return o, errors.New("--queue is required")
	case modes != 1:
		return o, errors.New("give exactly one of --show, --export FILE and --republish")
	case o.max < 0:
		return o, errors.New("--max must not be negative")
	case o.visibility < time.Second || o.visibility > 12*time.Hour:
		return o, errors.New("--visibility-timeout must be between 1s and 12h")
	case o.wait < 0 || o.wait > 20*time.Second:
		return o, errors.New("--wait must be between 0 and 20s")
	case o.includeUndecodable && !*republish:
		return o, errors.New("--include-undecodable goes with --republish")
	}
	switch {
	case o.exportFile != "":
		o.mode = modeExport
	case *republish:
		o.mode = modeRepublish
	}
	return o, nil
}

// run is the whole command behind main. load adds SDK config options (the
// tests' HTTP client); the standard chain provides the rest.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, load ...func(*config.LoadOptions) error) int {
	o, err := parseArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "redrive: %v\n", err)
		}
		return exitUsage
	}
	cfg, err := sdkbody.LoadDefaultConfig(ctx, load...)
	if err != nil {
		fmt.Fprintf(stderr, "redrive: AWS config: %v\n", err)
		return exitError
	}
	kin := kinesis.NewFromConfig(cfg)
	r := &redriver{
		sqs:    sqs.NewFromConfig(cfg),
		kin:    kin,
		region: cfg.Region,
		out:    stdout,
		warn:   stderr,
		put: putter{
			api:         kin,
			backoff:     backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Equal: true},
			maxAttempts: 10,
			sleep:       sleepCtx,
		},
	}
	if err := r.redrive(ctx, o); err != nil {
		fmt.Fprintf(stderr, "redrive: %v\n", err)
		return exitError
	}
	return exitOK
}

// queueAPI is the part of the SQS client redrive uses.
type queueAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// redriver reads the dead-letter queue and handles what it finds: out gets
// the report, warn the warnings and problems.
type redriver struct {
	sqs       queueAPI
	kin       kinesisAPI
	put       putter
	region    string
	out, warn io.Writer
}

// deadLetter is one message of the queue and what redrive made of it.
type deadLetter struct {
	id, handle string
	failure    failureRecord
	records    []streamRecord
	problem    error  // why it can't be handled; nil when it can
	skipped    string // why it is left alone (another stream)
	deleted    bool
}

// redrive receives the messages, reads their records from the stream,
// reports them, and exports or republishes them. Every message it does not
// delete is made visible again at the end. It returns an error when some
// message could not be handled.
func (r *redriver) redrive(ctx context.Context, o options) error {
	letters, err := r.receive(ctx, o)
	defer r.release(o.queue, letters)
	if err != nil {
		return err
	}
	if len(letters) == 0 {
		fmt.Fprintf(r.out, "%s: no messages\n", o.queue)
		return nil
	}
	r.load(ctx, letters, o.stream)
	for _, l := range letters {
		r.report(l, o.showValues)
	}
	switch o.mode {
	case modeExport:
		if err := export(o.exportFile, letters); err != nil {
			return err
		}
		fmt.Fprintf(r.out, "exported to %s; the messages stay in the queue\n", o.exportFile)
	case modeRepublish:
		if err := r.republish(ctx, o.queue, letters, o.includeUndecodable); err != nil {
			return err
		}
	}
	unhandled := 0
	for _, l := range letters {
		if l.problem != nil {
			unhandled++
		}
	}
	if unhandled > 0 {
		return fmt.Errorf("%d of %d messages could not be handled; they stay in the queue", unhandled, len(letters))
	}
	return nil
}

// receive takes messages from the queue until it answers with none, or
// max are taken. They stay invisible to other readers meanwhile.
func (r *redriver) receive(ctx context.Context, o options) ([]*deadLetter, error) {
	var letters []*deadLetter
	seen := map[string]*deadLetter{}
	for o.max == 0 || len(letters) < o.max {
		n := int32(10)
		if o.max > 0 {
			n = int32(min(10, o.max-len(letters)))
		}
		out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(o.queue),
			MaxNumberOfMessages: n,
			VisibilityTimeout:   int32(o.visibility / time.Second),
			WaitTimeSeconds:     int32(o.wait / time.Second),
		})
		if err != nil {
			return letters, fmt.Errorf("receive from %s: %w", o.queue, err)
		}
		fresh := 0
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if l := seen[id]; l != nil {
				l.handle = aws.ToString(m.ReceiptHandle) // only the newest handle deletes
				continue
			}
			fresh++
			l := &deadLetter{id: id, handle: aws.ToString(m.ReceiptHandle)}
			l.failure, l.problem = parseFailure(aws.ToString(m.Body))
			seen[id] = l
			letters = append(letters, l)
		}
		if fresh == 0 {
			break
		}
	}
	return letters, nil
}

// load puts the letters in stream order (per stream and shard, by start
// sequence number), so that records of one row from several failed
// batches keep their order, and reads each batch's records.
func (r *redriver) load(ctx context.Context, letters []*deadLetter, onlyStream string) {
	sort.SliceStable(letters, func(i, j int) bool {
		a, b := letters[i].failure.KinesisBatchInfo, letters[j].failure.KinesisBatchInfo
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.StreamArn != b.StreamArn:
			return a.StreamArn < b.StreamArn
		case a.ShardID != b.ShardID:
			return a.ShardID < b.ShardID
		}
		return seqLess(a.StartSequenceNumber, b.StartSequenceNumber)
	})
	for _, l := range letters {
		if l.problem != nil {
			continue
		}
		b := l.failure.KinesisBatchInfo
		if onlyStream != "" && b.StreamArn != onlyStream {
			l.skipped = "a failure record of another stream, " + b.StreamArn
			continue
		}
		name, err := streamName(b.StreamArn, r.region)
		if err != nil {
			l.problem = err
			continue
		}
		l.records, l.problem = fetchBatch(ctx, r.kin, name, b)
	}
}

// report prints why a batch failed and, for each record, its key and
// whether it decodes; row values only with showValues.
func (r *redriver) report(l *deadLetter, showValues bool) {
	f := l.failure
	w := r.out
	b := f.KinesisBatchInfo
	switch {
	case b == nil:
		fmt.Fprintf(w, "message %s: PROBLEM: %v\n", l.id, l.problem)
		return
	case l.skipped != "":
		fmt.Fprintf(w, "message %s: skipped: %s\n", l.id, l.skipped)
		return
	}
	fnErr := f.ResponseContext.FunctionError
	if fnErr == "" {
		fnErr = "none"
	}
	fmt.Fprintf(w, "message %s: %s after %d invocations, at %s\n", l.id, f.RequestContext.Condition, f.RequestContext.ApproximateInvokeCount, f.Timestamp)
	fmt.Fprintf(w, "  function %s: status %d, function error %s\n", f.RequestContext.FunctionArn, f.ResponseContext.StatusCode, fnErr)
	fmt.Fprintf(w, "  batch of %d on %s %s: sequence numbers %s to %s, arrived %s to %s\n",
		b.BatchSize, b.StreamArn, b.ShardID, b.StartSequenceNumber, b.EndSequenceNumber, b.ApproximateArrivalOfFirstRecord, b.ApproximateArrivalOfLastRecord)
	for _, rec := range l.records {
		fmt.Fprintf(w, "  record %s key %s arrived %s: %s\n", rec.Seq, rec.PartitionKey, rec.Arrival.Format(time.RFC3339Nano), describe(rec))
		if showValues {
			fmt.Fprintf(w, "    data: %s\n", printable(rec.Data))
		}
	}
	if l.problem != nil {
		fmt.Fprintf(w, "  PROBLEM: %v\n", l.problem)
	}
	if len(l.records) > b.BatchSize && b.BatchSize > 0 {
		fmt.Fprintf(r.warn, "WARNING: message %s: %d records lie between its sequence numbers but the batch had %d: with ParallelizationFactor > 1 the range holds other keys' records too, which were probably delivered; republishing delivers them again\n",
			l.id, len(l.records), b.BatchSize)
	}
}

// describe says whether change.Decode accepts the record, and what the
// changes are (table, operation, position), never their values.
func describe(rec streamRecord) string {
	if rec.DecodeErr != nil {
		return "DECODE ERROR: " + rec.DecodeErr.Error()
	}
	parts := make([]string, len(rec.Decoded.Changes))
	for i, c := range rec.Decoded.Changes {
		what := c.Schema + "." + c.Table + " " + string(c.Op)
		if c.Op == change.Message {
			what = "message " + c.Prefix
		}
		parts[i] = fmt.Sprintf("%s lsn %s seq %d", what, c.CommitLSN, c.Seq)
	}
	n := "1 change"
	if len(parts) != 1 {
		n = fmt.Sprintf("%d changes", len(parts))
	}
	return fmt.Sprintf("decodes (%s): %s", n, strings.Join(parts, "; "))
}

// printable is data as text when it is UTF-8, else base64.
func printable(data []byte) string {
	if utf8.Valid(data) {
		return string(data)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(data)
}

// exportLine is one record in an export file.
type exportLine struct {
	MessageID    string `json:"messageId"`
	Stream       string `json:"stream"`
	Shard        string `json:"shard"`
	Seq          string `json:"seq"`
	PartitionKey string `json:"partitionKey"`
	Arrival      string `json:"arrival"`
	Data         []byte `json:"data"` // base64
	DecodeError  string `json:"decodeError,omitempty"`
}

// export writes every record read as a JSON line to a new file, readable
// by its owner only: it holds row data.
func export(path string, letters []*deadLetter) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, l := range letters {
		for _, rec := range l.records {
			line := exportLine{MessageID: l.id, Stream: l.failure.KinesisBatchInfo.StreamArn, Shard: rec.Shard, Seq: rec.Seq,
				PartitionKey: rec.PartitionKey, Arrival: rec.Arrival.Format(time.RFC3339Nano), Data: rec.Data}
			if rec.DecodeErr != nil {
				line.DecodeError = rec.DecodeErr.Error()
			}
			if err := enc.Encode(line); err != nil {
				f.Close()
				return fmt.Errorf("export: %w", err)
			}
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// republish puts the records of every letter that can be handled back
// into their stream, in order, and deletes each letter's message as soon as
// all its records are back.
func (r *redriver) republish(ctx context.Context, queue string, letters []*deadLetter, includeUndecodable bool) error {
	fmt.Fprintln(r.warn, "WARNING: republished records are appended to the stream after any newer changes of the same rows, so fanout publishes those rows' old changes after their newer ones: per-row order is NOT preserved for rows changed since. Consumers must drop repeats by detail.lsn + detail.seq, and can tell a stale change of a row by its lower detail.lsn (then detail.seq).")
	type item struct {
		rec    *streamRecord
		letter *deadLetter
	}
	byStream := map[string][]item{}
	var streams []string
	left := map[*deadLetter]int{}
	for _, l := range letters {
		if l.problem != nil || l.skipped != "" {
			continue
		}
		if len(l.records) == 0 {
			l.problem = errors.New("no records to put back")
			continue
		}
		bad := 0
		for _, rec := range l.records {
			if rec.DecodeErr != nil {
				bad++
			}
		}
		if bad > 0 && !includeUndecodable {
			l.problem = fmt.Errorf("not republished: %d of its records don't decode with this build and fanout would fail on them again; export them, or pass --include-undecodable", bad)
			fmt.Fprintf(r.warn, "message %s: %v\n", l.id, l.problem)
			continue
		}
		name, _ := streamName(l.failure.KinesisBatchInfo.StreamArn, r.region) // checked by load
		if _, ok := byStream[name]; !ok {
			streams = append(streams, name)
		}
		for i := range l.records {
			byStream[name] = append(byStream[name], item{rec: &l.records[i], letter: l})
		}
		left[l] = len(l.records)
	}
	for _, name := range streams {
		items := byStream[name]
		recs := make([]*streamRecord, len(items))
		for i, it := range items {
			recs[i] = it.rec
		}
		err := r.put.put(ctx, name, recs, func(i int) {
			l := items[i].letter
			if left[l]--; left[l] > 0 {
				return
			}
			if _, err := r.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: aws.String(l.handle)}); err != nil {
				l.problem = fmt.Errorf("its %d records are back in the stream, but deleting the message failed (%w): delete it by hand, or a later redrive republishes them again", len(l.records), err)
				return
			}
			l.deleted = true
			fmt.Fprintf(r.out, "message %s: %d records put back into %s; message deleted\n", l.id, len(l.records), name)
		})
		if err != nil {
			for l, n := range left {
				if n > 0 && l.problem == nil {
					l.problem = fmt.Errorf("%d of its records were not put back: %w", n, err)
				}
			}
			return err
		}
	}
	return nil
}

// release makes every message that was received but not deleted visible
// again at once, so that a later run (or another reader) sees it without
// waiting for the visibility timeout.
func (r *redriver) release(queue string, letters []*deadLetter) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, l := range letters {
		if l.deleted {
			continue
		}
		if _, err := r.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(queue), ReceiptHandle: aws.String(l.handle), VisibilityTimeout: 0,
		}); err != nil {
			fmt.Fprintf(r.warn, "redrive: message %s stays hidden until its visibility timeout ends: %v\n", l.id, err)
		}
	}
}
