// Package putrecords is capture's output: it writes row changes to a Kinesis
// data stream with PutRecords, in order per row, packed and batched, retrying
// what Kinesis rejects, and acknowledges each change to a checkpoint.Tracker,
// which decides the WAL positions capture may confirm to PostgreSQL.
//
// Order: each change goes out under change.PartitionKey, and a partition key
// never has two records in flight. Changes that queue up behind an in-flight
// record of their key are packed into the key's next record (one
// change.Record, up to the stream's record size), so a hot row costs one
// round trip per batch of changes, not per change. A record that Kinesis
// rejects (throttling, internal failure, a failed request) is re-sent before
// anything later of its key, so per-key order survives retries.
//
// Version 2 records (Config.Format) keep all of that and pack the ready
// keys of one shard into one record, routed by explicit hash key; v2.go
// says how, and why order per row survives resharding.
//
// Acknowledgement: every change Add queues is tracked by the writer's
// checkpoint.Tracker and acknowledged to it when Kinesis accepts its record;
// Mark and Confirmable are the tracker's (see package checkpoint, the one
// place that decides what capture may confirm). Nothing is dropped, and
// retryable failures are retried for as long as the writer's context lives.
//
// Size: a change larger than a record is fitted by change.Shrink, the size
// policy of change records (its largest non-key values become omitted
// markers), and counted.
//
// Delivery is at least once: a request that Kinesis applied but whose answer
// was lost (a timeout, a dropped connection, the SDK's own retry) is sent
// again, so a consumer may see a change twice, always in order after its
// first copy; (CommitLSN, Seq) identifies it. Order holds per partition key
// only: an update that changes a row's key, and a truncate, travel under
// other keys than the row's later changes (see change.PartitionKey).
//
// The client is the caller's: build it from sdkbody.LoadDefaultConfig
// (config.LoadDefaultConfig with the body guard, without which about one
// request in a thousand under load is answered and still reported failed,
// and sent again), and without config.WithHTTPClient(&http.Client{...}),
// which would stop the SDK from loading AWS_CA_BUNDLE. Its retry settings do
// not matter to PutRecords: the writer makes each call a single attempt and
// retries on its own.
//
// Size: about 970 lines. The writer is one state machine around one lock
// (key queues, packing, batches, retries, acknowledgement), and its tests
// drive it as one; what has a job of its own is elsewhere: the ledger in
// package checkpoint, the request and answer bytes in package wire, record
// framing and the size policy in package change.
package putrecords

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/capture/checkpoint"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// API is the part of the Kinesis client the writer uses; *kinesis.Client
// from aws-sdk-go-v2 satisfies it.
type API interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	// ListShards is used by version 2 records only (the shard map).
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// Record formats (Config.Format).
const (
	FormatV1 = "v1" // one partition key per record
	FormatV2 = "v2" // the keys of one shard per record (see v2.go)
)

// Config configures a Writer. Only Stream is required.
type Config struct {
	// Stream is the stream's name or its ARN ("arn:aws:kinesis:...").
	Stream string
	// Concurrency is how many PutRecords requests may be in flight at once
	// (default 8). Requests in flight never share a partition key. Each
	// keeps a buffer of up to MaxRequestBytes for its records' data, on top
	// of BufferBytes (and the SDK's own copies while it serializes).
	Concurrency int
	// BufferBytes bounds the encoded changes queued or in flight; Add blocks
	// while the buffer is full (default 32 MiB). A single change larger than
	// the buffer is still accepted when the buffer is empty.
	BufferBytes int
	// RetryBase and RetryMax shape the backoff between retries: full jitter,
	// growing from RetryBase and capped at RetryMax (defaults 50 ms and 5 s).
	RetryBase, RetryMax time.Duration
	// Metrics receives the writer's series; nil keeps them private (Stats
	// still works).
	Metrics *metrics.Registry
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Format is the change record version written: FormatV1 (the default)
	// or FormatV2.
	Format string
	// Uncompressed writes version 2 records without zstd.
	Uncompressed bool
	// ClaimCheck, when set, keeps large values in S3 instead of omitting
	// them: a text value over ClaimCheckBytes (default
	// claimcheck.DefaultThreshold), then the largest values of a change too
	// large for its record (or for ClaimCheckRecordBytes, which bounds a
	// record for Lambda), become references, put in S3 before Add queues the
	// change. While S3 is unavailable Add waits (retrying), so nothing after
	// the change is confirmed.
	ClaimCheck            *claimcheck.Store
	ClaimCheckBytes       int
	ClaimCheckRecordBytes int
	// MaxChangesPerRecord bounds a version 2 record (default 500). The
	// bound is for fanout: Lambda hands it up to BatchSize records per
	// invocation, each of which it must publish before the invocation's
	// timeout, at PutEvents' 10 entries a request. At 500, a shard's 1,000
	// records a second still carry far more changes than capture decodes.
	MaxChangesPerRecord int
}

// Kinesis limits the writer respects.
const (
	// MaxRecordsPerRequest is PutRecords' limit on records per request.
	MaxRecordsPerRequest = 500
	// MaxRequestBytes is PutRecords' limit on a request's data plus
	// partition keys. A record larger than this (possible on a stream whose
	// MaxRecordSizeInKiB is raised above 5120) is sent in a request of its own.
	MaxRequestBytes = 5 << 20
	// DefaultMaxRecordSizeInKiB is a stream's record size limit (data plus
	// partition key) when DescribeStreamSummary does not report one.
	DefaultMaxRecordSizeInKiB = 1024
)

// ErrClosed is returned by Add and Mark once Close has been called.
var ErrClosed = errors.New("kinesis writer is closed")

// ErrChangeTooLarge is returned (wrapped) by Add for a change that does not
// fit in one Kinesis record even with every non-key value omitted. It wraps
// change.ErrTooLarge.
var ErrChangeTooLarge = fmt.Errorf("%w for a Kinesis record", change.ErrTooLarge)

// Writer is the ordered, batched PutRecords writer. Add and Mark must be
// called from one goroutine (the WAL reader's), in stream order; Confirmable
// and Stats may be called from anywhere.
type Writer struct {
	api    API
	cfg    Config
	log    *zap.Logger
	m      writerMetrics
	stream string  // as configured, for messages
	name   *string // exactly one of name and arn is set
	arn    *string

	maxRecord atomic.Int64        // bytes of data plus partition key
	cp        *checkpoint.Tracker // guarded by mu, but for Confirmable

	scratch      []byte // Add's encode buffer (Add's goroutine only)
	keyScratch   []byte // Add's partition key buffer
	fitScratch   []byte // the claim check's trial encodings (Add's goroutine only)
	shapeScratch []byte // Add's shape buffer (v2)
	// lastShape says whose shape shapeScratch holds (v2, Add's goroutine).
	// Consecutive changes of a relation share one Columns array (the
	// decoder's relation, a backfill chunk's columns), so the shape is
	// encoded and interned once per run of them rather than per change.
	lastShape shapeOf
	// memo keeps the last columns' and commit time's encodings (Add's
	// goroutine): a transaction's changes to a table share both.
	memo change.Memo

	v2     bool
	comp   *change.Compressor           // v2 unless Uncompressed
	shards atomic.Pointer[shardmap.Map] // v2: the shard map records are routed by
	relist sync.Mutex                   // one ListShards at a time

	ctx      context.Context // the writer's life; canceled by Close or the parent
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	progress chan struct{} // capacity 1: something was acknowledged or failed

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	work  sync.Cond // workers wait here for ready keys
	keys  map[string]*keyQueue
	free  []*keyQueue
	ready deque[*keyQueue] // keys with queued changes and nothing in flight
	// readyLow holds ready keys whose next change is a backfill's read:
	// requests take them only after every ready key of live changes, so a
	// chunk of reads never delays the live stream behind it.
	readyLow deque[*keyQueue]
	bytes    int // encoded bytes queued or in flight
	// v2: the shapes of changes, interned by their bytes. A record carries
	// the definitions of the shapes its changes use; ids are the writer's
	// own. Definitions are never changed once added.
	shapeIDs  map[string]int32
	shapeDefs [][]byte
	// acked is closed and replaced when Confirmable may have moved, once
	// Acked has handed it out (so that a Mark nobody waits for costs no
	// channel).
	acked    chan struct{}
	ackedOut bool
	err      error // first fatal error
	closing  bool  // Close was called: no more Add or Mark
	stop     bool  // workers must exit
}

// keyQueue holds one partition key's changes that are not yet acknowledged:
// buf is their encodings, each preceded by a comma, and items[head:] say
// where each ends. While inFlight, a record of the first queued items is in
// a PutRecords request.
type keyQueue struct {
	key      string
	hash     shardmap.Hash // v2: the key's hash, which decides its shard
	buf      []byte
	items    []item
	head     int // first unacknowledged item
	start    int // offset in buf where items[head] begins (its comma)
	inFlight bool
	inReady  bool
}

type item struct {
	end    int               // offset in keyQueue.buf just past this change
	ticket checkpoint.Ticket // the change's entry in the tracker
	commit int64             // commit time, Unix nanoseconds (0: unknown)
	read   bool              // a backfill's read: sent after live changes
	shape  int32             // v2: the change's shape id, -1 for none
}

// NewWriter starts a writer for cfg.Stream. ctx bounds the writer's whole
// life: once it is canceled, requests in flight are abandoned and Add, Mark
// and Close fail; pass a context that outlives the drain on shutdown and
// bound the drain with Close's context instead. Close must be called in every
// case: it waits for the writer's goroutines.
//
// Call Check before the first Add: it learns the stream's record size limit
// (until then the default 1024 KiB is assumed).
func NewWriter(ctx context.Context, api API, cfg Config) (*Writer, error) {
	if cfg.Stream == "" {
		return nil, errors.New("kinesis writer: no stream configured")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = 32 << 20
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 50 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryBase {
		cfg.RetryMax = max(5*time.Second, cfg.RetryBase)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	claimCheckDefaults(&cfg)
	if cfg.MaxChangesPerRecord <= 0 {
		cfg.MaxChangesPerRecord = 500
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatV1
	case FormatV1, FormatV2:
	default:
		return nil, fmt.Errorf("kinesis writer: record format %q: want %s or %s", cfg.Format, FormatV1, FormatV2)
	}
	w := &Writer{
		api:      api,
		cfg:      cfg,
		log:      cfg.Logger.With(zap.String("stream", cfg.Stream)),
		m:        newWriterMetrics(cfg.Metrics),
		stream:   cfg.Stream,
		cp:       checkpoint.New(),
		progress: make(chan struct{}, 1), acked: make(chan struct{}),
		keys:     map[string]*keyQueue{},
		v2:       cfg.Format == FormatV2,
		shapeIDs: map[string]int32{}, lastShape: shapeOf{id: -1},
	}
	if w.v2 && !cfg.Uncompressed {
		// One encoder: at full speed (BenchmarkBurst, 76,000 changes/s) the
		// raw records are about 13 MB/s, a few percent of a core at zstd's
		// fastest level. One per worker let more workers meet a throttled
		// shard at once: twice the CPU per change, no faster.
		w.comp = change.NewCompressor(1)
	}
	if strings.HasPrefix(cfg.Stream, "arn:") {
		w.arn = &w.stream
	} else {
		w.name = &w.stream
	}
	w.maxRecord.Store(DefaultMaxRecordSizeInKiB << 10)
	w.work.L = &w.mu
	w.ctx, w.cancel = context.WithCancel(ctx)

	w.wg.Add(1 + cfg.Concurrency)
	go w.watch()
	for range cfg.Concurrency {
		go w.worker()
	}
	return w, nil
}

// watch turns the cancellation of the writer's context into a fatal error,
// which wakes everything that waits.
func (w *Writer) watch() {
	defer w.wg.Done()
	<-w.ctx.Done()
	w.fail(fmt.Errorf("kinesis writer for stream %s stopped: %w", w.stream, context.Cause(w.ctx)))
}

// Add queues one change, in commit order. It encodes c before returning, so
// the caller may reuse c and its slices. It blocks while the buffer is full,
// until ctx is done. An error means the change was not queued: the caller
// must not Mark a position after it (stop, or replay from Confirmable).
//
// A change too large for one record on its own has its largest non-key text
// values replaced by change.Omitted markers until it fits (counted in
// walbridge_oversized_changes_total); if even that is not enough, Add fails
// with ErrChangeTooLarge and the writer stops.
func (w *Writer) Add(ctx context.Context, c *change.Change) error {
	w.keyScratch = change.AppendPartitionKey(w.keyScratch[:0], c)
	encode, shaped := w.encode, false
	if w.v2 {
		encode, shaped = w.encodeBody, change.HasShape(c)
	}
	if w.cfg.ClaimCheck != nil && c.Op != change.Truncate && c.Op != change.Message && c.Op != change.SchemaChange {
		var err error
		if c, err = w.claimCheck(ctx, c); err != nil {
			return err // ctx ended while S3 was unavailable: not queued
		}
	}
	if err := encode(c); err != nil {
		w.fail(err)
		return err
	}
	n := len(w.scratch)
	var commit int64
	if !c.CommitTime.IsZero() && c.Op != change.Read {
		// A backfill's read is no commit of the application's: it stays
		// out of the commit-to-ack latency.
		commit = c.CommitTime.UnixNano()
	}

	w.mu.Lock()
	for {
		if err := w.usableLocked(); err != nil {
			w.mu.Unlock()
			return err
		}
		if w.bytes == 0 || w.bytes+n <= w.cfg.BufferBytes {
			break
		}
		w.mu.Unlock()
		select {
		case <-w.progress:
		case <-ctx.Done():
			return fmt.Errorf("kinesis writer: waiting for buffer space: %w", ctx.Err())
		}
		w.mu.Lock()
	}
	kq := w.keys[string(w.keyScratch)] // no allocation: the compiler looks up the bytes
	if kq == nil {
		kq = w.newKeyQueueLocked(string(w.keyScratch))
	}
	shape := int32(-1)
	if shaped {
		if shape = w.lastShape.id; shape < 0 {
			shape = w.internLocked(w.shapeScratch)
			w.lastShape.id = shape
		}
	}
	kq.buf = append(kq.buf, w.scratch...)
	kq.items = append(kq.items, item{end: len(kq.buf), ticket: w.cp.Track(), commit: commit, read: c.Op == change.Read, shape: shape})
	w.bytes += n
	w.m.buffered.Set(float64(w.bytes))
	if !kq.inFlight && !kq.inReady {
		w.readyLocked(kq)
	}
	w.mu.Unlock()
	if cap(w.scratch) > 1<<20 {
		w.scratch = nil // do not keep an outsized change's buffer
	}
	return nil
}

// Mark says: once everything added before this call is acknowledged, lsn is
// confirmable. Call it after each transaction's commit and for keepalive
// positions when idle. A lower lsn than an earlier Mark never lowers
// Confirmable.
func (w *Writer) Mark(ctx context.Context, lsn change.LSN) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return err
	}
	w.cp.Mark(lsn)
	w.m.confirmable.Set(float64(w.cp.Confirmable()))
	w.notifyAckedLocked()
	return nil
}

// Acked returns a channel closed when Confirmable may have moved (or the
// writer failed): read Confirmable after taking it, wait on it if that is
// not yet far enough.
func (w *Writer) Acked() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ackedOut = true
	return w.acked
}

func (w *Writer) notifyAckedLocked() {
	if w.ackedOut {
		close(w.acked)
		w.acked, w.ackedOut = make(chan struct{}), false
	}
}

// Buffered is how many bytes of encoded changes are queued or in flight, and
// the buffer's bound (Add blocks beyond it). A backfill reads its next chunk
// only while the buffer is at most half full.
func (w *Writer) Buffered() (bytes, limit int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes, w.cfg.BufferBytes
}

// Confirmable is the highest LSN passed to Mark whose preceding changes are
// all acknowledged by Kinesis (0 before any).
func (w *Writer) Confirmable() change.LSN { return w.cp.Confirmable() }

// Close stops taking changes, waits until everything queued and in flight is
// acknowledged (bounded by ctx), and stops the writer's goroutines. It
// returns the writer's fatal error, if any, or an error saying what was left
// unacknowledged when ctx ended. Calling it again returns the same result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx) })
	return w.closeErr
}

func (w *Writer) close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	var err error
	for err == nil {
		w.mu.Lock()
		fatal, left := w.err, w.bytes
		w.mu.Unlock()
		if fatal != nil {
			err = fatal
			break
		}
		if left == 0 {
			break
		}
		select {
		case <-w.progress:
		case <-ctx.Done():
			err = fmt.Errorf("kinesis writer for stream %s: %d bytes of changes still unacknowledged at close: %w", w.stream, left, ctx.Err())
			w.fail(err)
		}
	}
	w.mu.Lock()
	w.stop = true
	w.work.Broadcast()
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	if err == nil {
		w.log.Info("kinesis writer drained", zap.Stringer("confirmable", w.Confirmable()))
	}
	return err
}

// usableLocked is why Add or Mark cannot proceed, if anything.
func (w *Writer) usableLocked() error {
	switch {
	case w.err != nil:
		return w.err
	case w.closing:
		return ErrClosed
	}
	return nil
}

// fail records the writer's first fatal error and stops it. After a clean
// Close it does nothing.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil && !w.stop {
		w.err = err
		w.log.Error("kinesis writer failed", zap.Error(err))
	}
	w.stop = true
	w.work.Broadcast()
	w.notifyAckedLocked()
	w.mu.Unlock()
	w.cancel()
	w.signalProgress()
}

func (w *Writer) signalProgress() {
	select {
	case w.progress <- struct{}{}:
	default:
	}
}

// encode puts c's encoding, preceded by a comma, in w.scratch. A change too
// large for a record of its own under the key in w.keyScratch is fitted by
// change.Shrink, counted and logged (without values: the partition key holds
// key values, so it is logged at debug only).
func (w *Writer) encode(c *change.Change) error {
	limit := w.recordLimit(nil)
	var omitted int
	var err error
	w.scratch, omitted, err = w.memo.Shrink(append(w.scratch[:0], ','), c, limit)
	if omitted == 0 && err == nil {
		return nil
	}
	return w.oversized(c, limit, omitted, err)
}

// recordLimit is how large a change's encoding (its body, for version 2,
// whose shape is shape) may be in a record of its own under the key in
// w.keyScratch.
func (w *Writer) recordLimit(shape []byte) int {
	if w.v2 {
		return int(w.maxRecord.Load()) - change.V2Overhead - change.MaxShapeRef - len(w.keyScratch) - len(shape)
	}
	return int(w.maxRecord.Load()) - change.RecordOverhead - len(w.keyScratch)
}

// oversized reports a change that encode or encodeBody fitted (omitted
// values) or could not fit (err) within limit bytes.
func (w *Writer) oversized(c *change.Change, limit, omitted int, err error) error {
	// The rare path: the original size is worth one more encoding.
	table := c.Schema + "." + c.Table
	before, fitted := len(change.AppendChange(nil, c)), len(w.scratch)-1
	if err != nil {
		return fmt.Errorf("%s change to %s at LSN %s is %d bytes encoded, %d with every non-key value omitted; stream %s allows %d per record including the partition key: %w",
			c.Op, table, c.LSN, before, fitted, w.stream, w.maxRecord.Load(), ErrChangeTooLarge)
	}
	w.m.oversized.With(table).Inc()
	w.log.Warn("change too large for one Kinesis record; omitted its largest values",
		zap.String("table", table), zap.Stringer("lsn", c.LSN), zap.Int("bytes", before), zap.Int("fitted_bytes", fitted),
		zap.Int("limit_bytes", limit), zap.Int("values_omitted", omitted))
	w.log.Debug("oversized change partition key", zap.String("table", table), zap.Stringer("lsn", c.LSN), zap.ByteString("partition_key", w.keyScratch))
	return nil
}

// readyLocked queues kq for a request: behind the live keys when its next
// change is a read.
func (w *Writer) readyLocked(kq *keyQueue) {
	kq.inReady = true
	if kq.items[kq.head].read {
		w.readyLow.push(kq)
	} else {
		w.ready.push(kq)
	}
	w.work.Signal()
}

// readyLen is how many keys wait for a request.
func (w *Writer) readyLen() int { return w.ready.len() + w.readyLow.len() }

func (w *Writer) newKeyQueueLocked(key string) *keyQueue {
	var kq *keyQueue
	if n := len(w.free); n > 0 {
		kq = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		kq = &keyQueue{}
	}
	kq.key = key
	if w.v2 {
		kq.hash = shardmap.KeyHash(w.keyScratch) // Add's scratch holds key's bytes
	}
	w.keys[key] = kq
	return kq
}

// deque is a FIFO that reuses its backing array.
type deque[T any] struct {
	buf  []T
	head int
}

func (d *deque[T]) len() int { return len(d.buf) - d.head }

func (d *deque[T]) at(i int) *T { return &d.buf[d.head+i] }

func (d *deque[T]) push(v T) {
	if d.head > 0 && len(d.buf) == cap(d.buf) && d.head*2 >= len(d.buf) {
		n := copy(d.buf, d.buf[d.head:])
		clear(d.buf[n:])
		d.buf = d.buf[:n]
		d.head = 0
	}
	d.buf = append(d.buf, v)
}

func (d *deque[T]) pop() T {
	v := d.buf[d.head]
	var zero T
	d.buf[d.head] = zero
	d.head++
	if d.head == len(d.buf) {
		d.buf = d.buf[:0]
		d.head = 0
	}
	return v
}
