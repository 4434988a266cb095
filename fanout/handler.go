package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/fanout/publish"
	"github.com/walbridge/walbridge/fanout/report"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// Handler turns a batch of Kinesis change records into DatabaseEvents on
// EventBridge. Lambda, the local poller and the tests call Handle the same
// way.
type Handler struct {
	pub             *publish.Publisher
	events          event.Config
	publishMessages bool
	publishSchema   bool
	log             *zap.Logger
	m               handlerMetrics
	// emf, when set, gets each batch's figures as an Embedded Metric
	// Format line (Lambda: stdout, which CloudWatch Logs turns into
	// metrics), dimensioned by function; now stamps them.
	emf      io.Writer
	function string
	now      func() time.Time
	// ranges tells a shard's hash key range, for version 2 records (nil:
	// they cannot be published, and wait).
	ranges rangeLookup
}

// rangeLookup is the part of shardRanges the handler uses.
type rangeLookup interface {
	Range(ctx context.Context, streamARN, shard string) (shardmap.Range, error)
}

type handlerMetrics struct {
	records, badRecords, events, skippedMessages metrics.Counter
	requests, entries, retries, failed           metrics.Counter
	shrunk, omittedValues, dropped               metrics.Counter
	elsewhere                                    metrics.Counter
}

func newHandler(pub *publish.Publisher, cfg config, log *zap.Logger, reg *metrics.Registry) *Handler {
	c := func(name, help string) metrics.Counter { return reg.Counter("walbridge_fanout_"+name, help).With() }
	return &Handler{pub: pub, events: cfg.Event, publishMessages: cfg.PublishMessages, publishSchema: cfg.PublishSchemaChanges, log: log, m: handlerMetrics{
		records:         c("records_total", "Kinesis records received."),
		badRecords:      c("bad_records_total", "Records that could not be decoded or turned into events."),
		events:          c("events_total", "Events built."),
		skippedMessages: c("skipped_messages_total", "Logical messages and schema changes skipped (WALBRIDGE_PUBLISH_MESSAGES, WALBRIDGE_PUBLISH_SCHEMA_CHANGES off)."),
		requests:        c("putevents_requests_total", "PutEvents calls."),
		entries:         c("putevents_entries_total", "Entries sent in PutEvents calls, retries included."),
		retries:         c("putevents_retries_total", "Entries sent again after a retryable failure."),
		failed:          c("events_failed_total", "Events refused for good or out of attempts."),
		shrunk:          c("events_shrunk_total", "Events over the size limit sent with values omitted."),
		omittedValues:   c("omitted_values_total", "Values replaced by omitted markers for size."),
		dropped:         c("events_dropped_total", "Events too large to send even with every value omitted."),
		elsewhere:       c("changes_elsewhere_total", "Changes of version 2 records whose key belongs to another shard than the one read (capture sent them there after a reshard): not published from here."),
	}, now: time.Now}
}

// withRanges gives the handler the shard ranges version 2 records need.
func (h *Handler) withRanges(r rangeLookup) *Handler {
	h.ranges = r
	return h
}

// withEMF makes the handler write each batch's EMF line to w, under the
// function's name.
func (h *Handler) withEMF(w io.Writer, function string) *Handler {
	h.emf, h.function = w, function
	return h
}

// Outcome is what a batch came to: the response for Lambda, and, when a
// record failed, why (a decode error, an event EventBridge refused, the
// deadline), for the log and the poller's on-failure file. Reason never
// holds row values.
type Outcome struct {
	events.KinesisEventResponse
	Reason string
}

// Handle is the Lambda handler: Process's response. Per-record problems
// never become an error return, which would make Lambda retry the whole
// batch.
func (h *Handler) Handle(ctx context.Context, in events.KinesisEvent) (events.KinesisEventResponse, error) {
	return h.Process(ctx, in).KinesisEventResponse, nil
}

// Process publishes the records in order and reports, as the one batch item
// failure, the first record that was not fully published: Lambda resumes the
// shard there. A record that cannot be decoded (or is of an unknown version)
// stops the batch at that record, and so does a version 2 record whose
// shard's hash range cannot be learnt now (ListShards failing).
//
// A version 2 record's changes are published only if their key hashes into
// the range of the shard the record was read from: the others are the
// writer's to re-send to their own shard (see package shardmap).
func (h *Handler) Process(ctx context.Context, in events.KinesisEvent) Outcome {
	var items []publish.Item
	firstBad := -1
	var badErr error
	poison := false
	skipped, elsewhere := 0, 0
	var keyBuf []byte
records:
	for i := range in.Records {
		rec := &in.Records[i]
		r, err := change.Decode(rec.Kinesis.Data)
		if err != nil {
			h.badRecord(rec, err)
			firstBad, badErr, poison = i, err, true
			break
		}
		var own shardmap.Range
		if r.Version == change.Version2 {
			if own, err = h.shardRange(ctx, rec); err != nil {
				h.log.Warn("shard's hash key range unknown; the batch resumes at this record", zap.String("shard", shardOf(rec)),
					zap.String("sequenceNumber", rec.Kinesis.SequenceNumber), zap.Error(err))
				firstBad, badErr = i, err
				break
			}
		}
		for j := range r.Changes {
			c := &r.Changes[j]
			key := rec.Kinesis.PartitionKey
			if r.Version == change.Version2 {
				keyBuf = change.AppendPartitionKey(keyBuf[:0], c)
				if !own.Contains(shardmap.KeyHash(keyBuf)) {
					elsewhere++
					continue
				}
				key = string(keyBuf)
			}
			var ev event.Event
			switch {
			case c.Op == change.Message && !h.publishMessages, c.Op == change.SchemaChange && !h.publishSchema:
				skipped++
				continue
			case c.Op == change.Message:
				ev, err = event.FromMessage(c, h.events)
			case c.Op == change.SchemaChange:
				ev, err = event.FromSchemaChange(c, h.events)
			default:
				ev, err = event.FromChange(c, h.events)
			}
			if err != nil {
				h.badRecord(rec, err)
				firstBad, badErr, poison = i, err, true
				break records
			}
			items = append(items, publish.Item{Record: i, Key: key, Event: &ev})
		}
	}

	res := h.pub.Publish(ctx, items)
	first := firstBad
	if res.FirstUnpublished >= 0 && (first < 0 || res.FirstUnpublished < first) {
		first = res.FirstUnpublished
	}
	h.count(len(in.Records), poison, skipped, res)
	h.m.elsewhere.Add(float64(elsewhere))
	batch := report.Batch{Records: len(in.Records), Result: res}
	h.writeEMF(batch)

	out := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	fields := []zap.Field{zap.Int("records", len(in.Records)), zap.Int("events", res.Events), zap.Int("accepted", res.Accepted),
		zap.Int("skippedMessages", skipped), zap.Int("elsewhere", elsewhere), zap.Int("requests", res.Requests), zap.Float64("entriesPerRequest", res.EntriesPerRequest()),
		zap.Int("retries", res.Retries), zap.Int("shrunk", res.Shrunk), zap.Int("dropped", res.Dropped)}
	fields = append(fields, batch.Fields()...)
	if len(in.Records) > 0 {
		fields = append(fields, zap.String("shard", shardOf(&in.Records[0])))
	}
	if first < 0 {
		h.log.Info("batch published", fields...)
		return Outcome{KinesisEventResponse: out}
	}
	failed := &in.Records[first]
	out.BatchItemFailures = append(out.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: failed.Kinesis.SequenceNumber})
	fields = append(fields, zap.Int("firstFailedRecord", first), zap.String("sequenceNumber", failed.Kinesis.SequenceNumber))
	why := badErr
	if first == res.FirstUnpublished && res.Err != nil {
		why = res.Err
	}
	reason := "not published"
	if why != nil {
		reason = why.Error()
		fields = append(fields, zap.String("reason", reason))
	}
	h.log.Warn("batch partly published; resuming at the first record not fully published", fields...)
	return Outcome{KinesisEventResponse: out, Reason: reason}
}

// shardRange is the hash key range of the shard rec was read from.
func (h *Handler) shardRange(ctx context.Context, rec *events.KinesisEventRecord) (shardmap.Range, error) {
	if h.ranges == nil {
		return shardmap.Range{}, errors.New("a version 2 record, and no shard map to check its keys against")
	}
	shard := shardOf(rec)
	if shard == "" || rec.EventSourceArn == "" {
		return shardmap.Range{}, fmt.Errorf("a version 2 record without its shard (eventID %q) or stream (eventSourceARN %q)", rec.EventID, rec.EventSourceArn)
	}
	return h.ranges.Range(ctx, rec.EventSourceArn, shard)
}

// writeEMF writes the batch's metrics line, when the handler has a writer
// for them. A line that cannot be written is logged, never fatal.
func (h *Handler) writeEMF(b report.Batch) {
	if h.emf == nil {
		return
	}
	line, err := b.Line(h.function, h.now()).Marshal()
	if err == nil {
		_, err = h.emf.Write(append(line, '\n'))
	}
	if err != nil {
		h.log.Warn("metrics line not written", zap.Error(err))
	}
}

// badRecord logs a record that cannot become events. The error text may
// quote part of the record, so it is logged at error level only.
func (h *Handler) badRecord(rec *events.KinesisEventRecord, err error) {
	h.log.Error("record cannot be published", zap.String("eventSourceARN", rec.EventSourceArn), zap.String("shard", shardOf(rec)),
		zap.String("eventID", rec.EventID), zap.String("sequenceNumber", rec.Kinesis.SequenceNumber),
		zap.Bool("unknownVersion", errors.Is(err, change.ErrUnknownVersion)), zap.Error(err))
}

func (h *Handler) count(records int, bad bool, skipped int, res publish.Result) {
	h.m.records.Add(float64(records))
	if bad {
		h.m.badRecords.Inc()
	}
	h.m.events.Add(float64(res.Events))
	h.m.skippedMessages.Add(float64(skipped))
	h.m.requests.Add(float64(res.Requests))
	h.m.entries.Add(float64(res.Entries))
	h.m.retries.Add(float64(res.Retries))
	h.m.failed.Add(float64(res.Failed))
	h.m.shrunk.Add(float64(res.Shrunk))
	h.m.omittedValues.Add(float64(res.Omitted))
	h.m.dropped.Add(float64(res.Dropped))
}

// shardOf is the shard id from a record's eventID ("shardId-…:seq").
func shardOf(rec *events.KinesisEventRecord) string {
	shard, _, _ := strings.Cut(rec.EventID, ":")
	return shard
}
