package putrecords

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/walbridge/walbridge/capture/putrecords/wire"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"
)

// batch is one PutRecords request's worth of records; each worker reuses
// its own.
type batch struct {
	recs    []record
	arena   []byte // the records' data
	rb      change.RecordBuilder
	entries []types.PutRecordsRequestEntry
	in      kinesis.PutRecordsInput
	v2      v2Batch
}

// record is one Kinesis record. In version 1 it is the first n queued
// changes of one key (one segment); in version 2, segments of many keys
// that the shard map puts in one shard.
type record struct {
	segs []segment
	data []byte // the record, inside the batch arena
	// Version 2 only.
	shard   string   // the shard the map predicted
	hashKey string   // ExplicitHashKey: the first key's hash
	shapes  []int32  // shape ids used, in the record's order
	defs    [][]byte // their definitions
	size    int      // uncompressed data plus partition key
	count   int      // changes
}

// segment is the first n queued changes of one key.
type segment struct {
	kq  *keyQueue
	n   int
	src []byte // the changes as queued (each after a comma), inside kq.buf
	// Version 2: copies of the n items (ends relative to src).
	items []item
}

// key is the record's partition key: its first key's.
func (r *record) key() *string { return &r.segs[0].kq.key }

// worker sends batches until the writer stops.
func (w *Writer) worker() {
	defer w.wg.Done()
	b := &batch{}
	b.in.StreamName, b.in.StreamARN = w.name, w.arn
	next := w.nextBatch
	if w.v2 {
		next = w.nextBatchV2
	}
	for next(b) {
		w.send(b)
	}
}

// nextBatch waits for ready keys and takes up to MaxRecordsPerRequest of
// them, one record each, within MaxRequestBytes. It returns false when the
// writer stops.
func (w *Writer) nextBatch(b *batch) bool {
	b.recs = b.recs[:0]
	if !w.lockReady() {
		return false
	}
	maxRecord := int(w.maxRecord.Load())
	total := 0
	for len(b.recs) < MaxRecordsPerRequest && w.readyLen() > 0 {
		q := &w.ready
		if q.len() == 0 {
			q = &w.readyLow
		}
		kq := *q.at(0)
		n, size := w.packLocked(kq, maxRecord)
		if len(b.recs) > 0 && total+size > MaxRequestBytes {
			break
		}
		q.pop()
		kq.inReady, kq.inFlight = false, true
		b.recs = append(b.recs, record{segs: []segment{{kq: kq, n: n, src: kq.buf[kq.start+1 : kq.items[kq.head+n-1].end]}}})
		total += size
	}
	if w.readyLen() > 0 {
		w.work.Signal() // more for another idle worker
	}
	w.mu.Unlock()

	// Copy outside the lock. This is safe: Add only appends to kq.buf past
	// src (or into a new array), and nothing rewrites a key's buffer while the
	// key is in flight.
	need := 0
	for i := range b.recs {
		need += change.RecordOverhead + len(b.recs[i].segs[0].src)
	}
	b.arena = slices.Grow(b.arena[:0], need)
	for i := range b.recs {
		r := &b.recs[i]
		off := len(b.arena)
		b.rb.Start(b.arena)
		b.rb.AddEncoded(r.segs[0].src)
		b.arena = b.rb.Finish()
		r.data = b.arena[off:len(b.arena):len(b.arena)]
		r.segs[0].src = nil
	}
	return true
}

// lockReady waits for ready keys and returns with w.mu held, or returns
// false (not holding it) when the writer stops.
func (w *Writer) lockReady() bool {
	w.mu.Lock()
	for !w.stop && w.readyLen() == 0 {
		w.work.Wait()
	}
	if w.stop {
		w.mu.Unlock()
		return false
	}
	return true
}

// packLocked chooses how many of kq's queued changes go into its next record
// and returns that record's size (data plus partition key). The first change
// always fits: Add made sure of it.
func (w *Writer) packLocked(kq *keyQueue, maxRecord int) (n, size int) {
	queued := kq.items[kq.head:]
	fixed := change.RecordOverhead + len(kq.key) - 1 // -1: the first comma is not sent
	n = sort.Search(len(queued), func(i int) bool { return fixed+queued[i].end-kq.start > maxRecord })
	n = max(n, 1)
	return n, fixed + queued[n-1].end - kq.start
}

// send puts the batch, re-sending failed records (and only those) until all
// are acknowledged, the writer stops, or an error that retrying cannot fix
// makes the writer fail.
func (w *Writer) send(b *batch) {
	pending := b.recs
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 && !w.sleep(attempt) {
			return
		}
		b.entries = b.entries[:0]
		for i := range pending {
			e := types.PutRecordsRequestEntry{Data: pending[i].data, PartitionKey: pending[i].key()}
			if pending[i].hashKey != "" {
				e.ExplicitHashKey = &pending[i].hashKey
			}
			b.entries = append(b.entries, e)
		}
		b.in.Records = b.entries
		w.m.batches.Inc()
		out, err := w.api.PutRecords(w.ctx, &b.in, wire.Protocol, singleAttempt)
		if err != nil {
			if w.ctx.Err() != nil {
				return // the writer is stopping; watch reports why
			}
			reason, ok := classify(err)
			if !ok {
				w.fail(fmt.Errorf("put records to stream %s: %w", w.stream, err))
				return
			}
			w.m.retried(reason, len(pending))
			w.logRetry(attempt, reason, len(pending), err)
			continue
		}
		if len(out.Records) != len(pending) {
			w.fail(fmt.Errorf("put records to stream %s: %d results for %d records", w.stream, len(out.Records), len(pending)))
			return
		}
		failed, reason, fatal := w.acknowledge(pending, out.Records)
		if fatal != nil {
			w.fail(fatal)
			return
		}
		if len(failed) > 0 {
			w.logRetry(attempt, reason, len(failed), fmt.Errorf("%d of %d records rejected", len(failed), len(pending)))
		}
		pending = failed
	}
}

// acknowledge applies one PutRecords result: accepted records are
// acknowledged, failed ones are returned (in place, in order) for a retry,
// with the retry reason of the last of them. An entry error code that a
// retry cannot fix is returned as fatal.
//
// A version 2 record that landed on another shard than the map predicted
// (the stream was resharded) is acknowledged only for the keys whose hash
// lies in the range of the shard it landed on: fanout, reading that shard,
// publishes those and drops the others, whose changes go back to their
// keys' queues to be sent again, by a fresh map, before anything later of
// those keys.
func (w *Writer) acknowledge(pending []record, results []types.PutRecordsResultEntry) (failed []record, reason string, fatal error) {
	landed := w.landedRanges(pending, results)
	now := time.Now().UnixNano()
	failed = pending[:0]
	var records, changes, bytes, rerouted int
	w.mu.Lock()
	for i := range results {
		r := pending[i]
		if code := results[i].ErrorCode; code != nil {
			if !retryableEntry(*code) && fatal == nil {
				fatal = fmt.Errorf("put records to stream %s: record rejected with %s: %s", w.stream, *code, aws.ToString(results[i].ErrorMessage))
			}
			reason = entryReason(*code)
			w.m.retried(reason, 1)
			failed = append(failed, r)
			continue
		}
		records++
		bytes += len(r.data) + len(*r.key())
		own, check := landed[i]
		for _, sg := range r.segs {
			if check && !own.Contains(sg.kq.hash) {
				rerouted += sg.n
				sg.kq.inFlight = false
				w.readyLocked(sg.kq)
				continue
			}
			changes += sg.n
			w.ackLocked(sg.kq, sg.n, now)
		}
	}
	w.m.confirmable.Set(float64(w.cp.Confirmable()))
	w.m.buffered.Set(float64(w.bytes))
	if records > 0 {
		w.notifyAckedLocked()
	}
	w.mu.Unlock()
	w.m.records.Add(float64(records))
	w.m.changes.Add(float64(changes))
	w.m.bytes.Add(float64(bytes))
	if rerouted > 0 {
		w.m.rerouted.Add(float64(rerouted))
		w.log.Info("resharded: changes re-sent to the shard that now owns their keys", zap.Int("changes", rerouted))
	}
	if records > 0 {
		w.signalProgress()
	}
	return failed, reason, fatal
}

// ackLocked retires the first n queued changes of kq, acknowledged, and
// makes the key ready again if more is queued.
func (w *Writer) ackLocked(kq *keyQueue, n int, now int64) {
	done := kq.items[kq.head : kq.head+n]
	for i := range done {
		w.cp.Ack(done[i].ticket)
		if c := done[i].commit; c != 0 {
			w.m.commitToAck.Observe(float64(now-c) / 1e9)
		}
	}
	end := done[len(done)-1].end
	w.bytes -= end - kq.start
	kq.head += n
	kq.start = end
	kq.inFlight = false
	if kq.head == len(kq.items) {
		delete(w.keys, kq.key)
		kq.key, kq.buf, kq.items, kq.head, kq.start = "", kq.buf[:0], kq.items[:0], 0, 0
		// Keep queues with small buffers for reuse: there are never more
		// of them than keys were once queued at the same time, which the
		// buffer budget bounds.
		if cap(kq.buf) <= 4<<10 {
			w.free = append(w.free, kq)
		}
		return
	}
	if kq.head >= 64 && kq.head*2 >= len(kq.items) {
		kq.compact()
	}
	w.readyLocked(kq)
}

// compact moves a queue's unacknowledged changes to the front of its
// buffers. Only call it while the key is not in flight.
func (kq *keyQueue) compact() {
	n := copy(kq.items, kq.items[kq.head:])
	kq.items = kq.items[:n]
	for i := range kq.items {
		kq.items[i].end -= kq.start
	}
	kq.buf = kq.buf[:copy(kq.buf, kq.buf[kq.start:])]
	kq.head, kq.start = 0, 0
}

// sleep waits before retry number attempt; false means the writer stopped.
func (w *Writer) sleep(attempt int) bool {
	return backoff.Sleep(w.ctx, backoff.Policy{Base: w.cfg.RetryBase, Max: w.cfg.RetryMax}.Delay(attempt-1))
}

// logRetry logs the first retry of a request and every tenth after it, so a
// long outage is visible without flooding the log.
func (w *Writer) logRetry(attempt int, reason string, records int, err error) {
	if attempt%10 != 0 {
		return
	}
	w.log.Warn("retrying PutRecords", zap.String("reason", reason), zap.Int("records", records), zap.Int("attempt", attempt+1), zap.Error(err))
}

// singleAttempt makes a PutRecords call one attempt: the writer retries
// failed requests itself, from a 50 ms backoff and counted by reason. Left
// to the SDK, a lost answer (aws-sdk-go-v2 issue 1825, seen here about once
// per million records) was re-sent after the SDK's own backoff of up to
// seconds, which put a 100-250 ms tail on commit-to-ack latency, and the
// re-send showed in no metric.
func singleAttempt(o *kinesis.Options) { o.RetryMaxAttempts = 1 }
