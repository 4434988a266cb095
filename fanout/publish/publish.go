// Package publish sends DatabaseEvents to EventBridge with PutEvents: packed
// into requests of at most ten entries within the request size limit, in
// order per row, retrying what EventBridge says is worth retrying for as long
// as the invocation's deadline allows, and reporting the first source record
// that was not fully published so that the stream can be resumed there.
//
// Order: events that share a key (the Kinesis partition key, one per row) are
// never in flight together. The next event for a key is sent only after
// EventBridge accepted the previous one, because entries of one request can
// fail independently and a retried entry would otherwise land after its
// successor. Requests mix keys freely, and several requests are in flight at
// once, so rows do not wait for each other; a table without a primary key has
// one key and so publishes one event per request at a time.
package publish

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/event"
)

// API is the EventBridge call the publisher needs; *eventbridge.Client
// implements it.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// OrderedAPI is the ordered bus's PutEvents; *orderedbus.Client implements
// it.
type OrderedAPI interface {
	PutEvents(ctx context.Context, entries []orderedbus.Entry) (*orderedbus.Output, error)
}

// Limits of PutEvents.
const (
	MaxEntries = 10 // entries per request on a classic bus (an ordered bus takes orderedbus.MaxEntries)
	// DefaultMaxRequestBytes is the request (and so entry) size limit by
	// PutEvents' size calculation: 1 MiB. Accounts that still have the old
	// limit need 262144.
	DefaultMaxRequestBytes = 1 << 20
)

// Config tunes a Publisher; zero fields take the defaults.
type Config struct {
	// EventBus is the bus name or ARN; empty sends to the account's default bus.
	EventBus string
	// MaxRequestBytes bounds a request's entries together (and so each event).
	MaxRequestBytes int
	// Concurrency is the number of requests in flight (default 4).
	Concurrency int
	// MaxAttempts bounds the attempts for one event within one Publish call
	// (default 10); the context's deadline bounds them too.
	MaxAttempts int
	// Backoff spaces retries (default 50ms doubling to 5s, jittered).
	Backoff backoff.Policy
	// DeadlineMargin is kept free before the context's deadline: no request
	// is started or waited for inside it, so the caller has time to report
	// (default 1s, or a tenth of the time left if that is less).
	DeadlineMargin time.Duration
	// Logger gets the failures and size decisions (never row values).
	Logger *zap.Logger
	// ClaimCheck, when set, keeps the largest values of an event over
	// MaxRequestBytes in S3, referenced, instead of omitting them.
	ClaimCheck *claimcheck.Store
	// Now is the clock latencies and end-to-end lags are read from
	// (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Backoff == (backoff.Policy{}) {
		c.Backoff = backoff.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second, Equal: true}
	}
	if c.DeadlineMargin <= 0 {
		c.DeadlineMargin = time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Publisher sends events with PutEvents. It is safe for concurrent use; each
// Publish call is independent.
type Publisher struct {
	api        API
	ordered    OrderedAPI
	maxEntries int
	cfg        Config
}

// New returns a Publisher that calls api (a classic bus).
func New(api API, cfg Config) *Publisher {
	return &Publisher{api: api, maxEntries: MaxEntries, cfg: cfg.withDefaults()}
}

// NewOrdered returns a Publisher for an ordered bus: each entry carries its
// item's Key as EventGroupId (orderedbus.GroupID) and "lsn:seq" as
// DeduplicationId, so the bus delivers each row's events in order and drops
// repeats inside its deduplication window. An entry answered DEDUPLICATED
// counts as accepted. Per-key order in flight is kept exactly as for the
// classic bus: the bus orders what it accepted, so a retried entry must
// still not be overtaken by its successor.
func NewOrdered(api OrderedAPI, cfg Config) *Publisher {
	return &Publisher{ordered: api, maxEntries: orderedbus.MaxEntries, cfg: cfg.withDefaults()}
}

// MaxRequestBytes is the size limit in force.
func (p *Publisher) MaxRequestBytes() int { return p.cfg.MaxRequestBytes }

// Item is one event to publish. Items are given in source order: Record is
// the index of the source record the event came from (non-decreasing), Key
// the ordering key (the record's partition key).
type Item struct {
	Record int
	Key    string
	Event  *event.Event
}

// Result is the outcome of a Publish call.
type Result struct {
	// FirstUnpublished is the lowest Record with an event that was not
	// accepted (failed, or not attempted in time), or -1 when every event
	// was published.
	FirstUnpublished int
	// Err says why FirstUnpublished is not -1.
	Err error
	Stats
	// Latencies are the PutEvents calls' durations, in the order they
	// answered.
	Latencies []time.Duration
	// Lags are, for each accepted event with a commit time, the time from
	// its commit to the answer that accepted it: the end-to-end lag.
	Lags []time.Duration
}

// Stats counts what a Publish call did.
type Stats struct {
	Events   int // events given
	Accepted int // events EventBridge accepted
	Requests int // PutEvents calls made
	Entries  int // entries in those calls, retries included
	Retries  int // entries sent again after a retryable failure
	Failed   int // events that failed for good (validation, attempts exhausted)
	// ClaimChecked counts values put in S3 to fit an event.
	ClaimChecked int
	Shrunk       int // events over the size limit that were sent with values omitted
	Omitted      int // values replaced by omitted markers in those events
	Dropped      int // events too large even with every value omitted: skipped
	// Deduplicated counts entries an ordered bus accepted as repeats of
	// an event it already had (included in Accepted).
	Deduplicated int
	// Throttled counts entries refused with ThrottlingException, alone or
	// with their whole request (a 429).
	Throttled int
}

// EntriesPerRequest is the average request fill.
func (s Stats) EntriesPerRequest() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Entries) / float64(s.Requests)
}

// Add accumulates other into s.
func (s *Stats) Add(o Stats) {
	s.Events += o.Events
	s.Accepted += o.Accepted
	s.Requests += o.Requests
	s.Entries += o.Entries
	s.Retries += o.Retries
	s.Failed += o.Failed
	s.Shrunk += o.Shrunk
	s.Omitted += o.Omitted
	s.Dropped += o.Dropped
	s.Deduplicated += o.Deduplicated
	s.Throttled += o.Throttled
}

// EntryError is an entry EventBridge refused for good.
type EntryError struct {
	Code, Message string
}

func (e *EntryError) Error() string { return e.Code + ": " + e.Message }

// retryableEntryCodes are the PutEvents entry error codes documented as
// retryable; every other code is final.
var retryableEntryCodes = map[string]bool{"ThrottlingException": true, "InternalFailure": true}

type itemState uint8

const (
	pending itemState = iota
	inFlight
	accepted
	failed  // refused for good or out of attempts
	dropped // too large to send at all
)

// keyQueue is one key's events. It is in the ready heap exactly when its
// head is neither in flight nor blocked.
type keyQueue struct {
	items   []int // indexes into Publish's items, in order
	pos     int   // the next one to send
	blocked bool  // an event failed for good: the rest must not overtake it
}

func (k *keyQueue) head() int  { return k.items[k.pos] }
func (k *keyQueue) done() bool { return k.pos >= len(k.items) }

// run is the state of one Publish call.
type run struct {
	p         *Publisher
	items     []Item
	sizes     []int
	state     []itemState
	attempts  []int
	notBefore []time.Time
	solo      []bool // send alone: a request with it was refused as a whole
	keyOf     []*keyQueue
	latencies []time.Duration
	lags      []time.Duration
	ready     readyHeap
	stopAt    int // items of records from here on are not started
	firstErr  error
	errRecord int
	stats     Stats
}

type sent struct {
	batch   []int
	out     *eventbridge.PutEventsOutput
	dedup   []bool // entries an ordered bus accepted as repeats
	err     error
	latency time.Duration
	at      time.Time // when the answer came
}

// Publish sends the items' events and returns when every event was accepted,
// failed for good, or the context's deadline (less the margin) came. Events
// over the size limit are shrunk in place (Event.Shrink). After
// an event fails for good no event of a later record is started (they would
// be sent again when the stream resumes at the failed record), and no later
// event of the same key is sent at all.
func (p *Publisher) Publish(ctx context.Context, items []Item) Result {
	r := &run{p: p, items: items, sizes: make([]int, len(items)), state: make([]itemState, len(items)),
		attempts: make([]int, len(items)), notBefore: make([]time.Time, len(items)), solo: make([]bool, len(items)),
		keyOf: make([]*keyQueue, len(items)), stopAt: int(^uint(0) >> 1), errRecord: -1}
	r.stats.Events = len(items)
	sendCtx, cancel := p.sendContext(ctx)
	defer cancel()
	r.prepare(sendCtx)

	results := make(chan sent, p.cfg.Concurrency)
	inflight := 0
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if sendCtx.Err() == nil {
			now := time.Now()
			for inflight < p.cfg.Concurrency {
				// While requests are out, wait for a full batch: their
				// answers free more keys, and fuller requests cost less.
				// With nothing out, send what there is.
				minEntries := 1
				if inflight > 0 {
					minEntries = p.maxEntries
				}
				batch := r.nextBatch(now, minEntries)
				if len(batch) == 0 {
					break
				}
				inflight++
				r.stats.Requests++
				r.stats.Entries += len(batch)
				call := r.call(batch)
				clock := p.cfg.Now
				go func() {
					start := clock()
					s := call(sendCtx)
					s.at = clock()
					s.batch, s.latency = batch, s.at.Sub(start)
					results <- s
				}()
			}
		}
		var wake <-chan time.Time
		if sendCtx.Err() == nil && inflight < p.cfg.Concurrency {
			if at, ok := r.nextWake(); ok {
				if timer == nil {
					timer = time.NewTimer(time.Until(at))
				} else {
					timer.Reset(time.Until(at))
				}
				wake = timer.C
			}
		}
		if inflight == 0 && wake == nil {
			break
		}
		select {
		case s := <-results:
			inflight--
			r.handle(sendCtx, s)
		case <-wake:
		case <-sendCtx.Done():
			if inflight == 0 {
				continue // loop once more to stop
			}
			s := <-results
			inflight--
			r.handle(sendCtx, s)
		}
	}
	return r.result(ctx)
}

// sendContext ends DeadlineMargin before ctx's deadline (or a tenth of the
// time left, when that is smaller).
func (p *Publisher) sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(p.cfg.DeadlineMargin, time.Until(deadline)/10)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// prepare applies the size policy and builds the per-key queues. With a
// claim check, an event over the limit has its largest values put in S3
// and referenced; without, omitted. An event whose values could not be put
// (S3 unavailable until ctx ended) fails: its record is not done.
func (r *run) prepare(ctx context.Context) {
	limit := r.p.cfg.MaxRequestBytes
	keys := map[string]*keyQueue{}
	for i := range r.items {
		it := &r.items[i]
		ev := it.Event
		k := keys[it.Key]
		if k == nil {
			k = &keyQueue{}
			keys[it.Key] = k
		}
		r.keyOf[i] = k
		if size := ev.EntrySize(); size > limit && r.p.cfg.ClaimCheck != nil {
			store := r.p.cfg.ClaimCheck
			putCtx, cancel := claimCheckContext(ctx)
			moved, fits, err := ev.ShrinkToRefs(limit, store.Bucket(), func(text string) (*change.Ref, error) { return store.Put(putCtx, text) })
			cancel()
			if err != nil {
				k.items = append(k.items, i)
				r.fail(i, fmt.Errorf("claim check: %w", err))
				continue
			}
			r.stats.ClaimChecked += moved
			r.p.cfg.Logger.Info("event over the size limit; largest values kept in S3", zap.String("schema", ev.Schema), zap.String("table", ev.Table),
				zap.Stringer("lsn", ev.LSN), zap.Uint32("seq", ev.Seq), zap.Int("bytes", size), zap.Int("limit", limit), zap.Int("values", moved), zap.Bool("fits", fits))
		}
		if size := ev.EntrySize(); size > limit {
			omitted, fits := ev.Shrink(limit)
			fields := []zap.Field{zap.String("schema", ev.Schema), zap.String("table", ev.Table), zap.Stringer("lsn", ev.LSN),
				zap.Uint32("seq", ev.Seq), zap.Int("bytes", size), zap.Int("limit", limit), zap.Int("omittedValues", omitted)}
			if !fits {
				r.state[i] = dropped
				r.stats.Dropped++
				r.p.cfg.Logger.Error("event too large even with every value omitted; dropped", fields...)
				continue
			}
			r.stats.Shrunk++
			r.stats.Omitted += omitted
			r.p.cfg.Logger.Warn("event over the size limit; largest values omitted", append(fields, zap.Int("sentBytes", ev.EntrySize()))...)
		}
		r.sizes[i] = ev.EntrySize()
		k.items = append(k.items, i)
	}
	for _, k := range keys {
		r.ready = append(r.ready, k)
	}
	heap.Init(&r.ready)
}

// claimCheckContext bounds the claim check's puts for one event (each
// retried while S3 fails): 10 s, and at most half the time left, so that
// while S3 is unavailable the other rows are still published before the
// deadline and only the event's own record is left for the next attempt.
func claimCheckContext(ctx context.Context) (context.Context, context.CancelFunc) {
	budget := 10 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(deadline)/2)
	}
	return context.WithTimeout(ctx, budget)
}

// maxSkipped bounds how many waiting keys one nextBatch looks past, so that
// a batch is cheap to build even when most keys are backing off.
const maxSkipped = 64

// nextBatch takes the events to send next: the head of each ready key, in
// source order, up to MaxEntries and the size limit. A batch of fewer than
// minEntries that still has room is not taken (nil); one the size limit
// closed is.
func (r *run) nextBatch(now time.Time, minEntries int) []int {
	var batch []int
	var later []*keyQueue
	size := 0
	for r.ready.Len() > 0 && len(batch) < r.p.maxEntries && len(later) < maxSkipped {
		k := heap.Pop(&r.ready).(*keyQueue)
		i := k.head()
		switch {
		case r.items[i].Record >= r.stopAt:
			continue // leaves the heap for good
		case r.notBefore[i].After(now), r.solo[i] && len(batch) > 0, size+r.sizes[i] > r.p.cfg.MaxRequestBytes:
			later = append(later, k)
			continue
		}
		batch = append(batch, i)
		size += r.sizes[i]
		r.state[i] = inFlight
		if r.solo[i] {
			break
		}
	}
	full := len(batch) == r.p.maxEntries || r.ready.Len() > 0 && len(batch) > 0 && size+r.sizes[r.ready[0].head()] > r.p.cfg.MaxRequestBytes
	if len(batch) < minEntries && !full {
		for _, i := range batch {
			r.state[i] = pending
			later = append(later, r.keyOf[i])
		}
		batch = nil
	}
	for _, k := range later {
		heap.Push(&r.ready, k)
	}
	return batch
}

// nextWake is when the earliest backed-off event may go, if any waits.
func (r *run) nextWake() (time.Time, bool) {
	var at time.Time
	found := false
	now := time.Now()
	for _, k := range r.ready {
		i := k.head()
		if r.items[i].Record >= r.stopAt || !r.notBefore[i].After(now) {
			continue
		}
		if !found || r.notBefore[i].Before(at) {
			at, found = r.notBefore[i], true
		}
	}
	return at, found
}

// call builds the request for a batch (now, on the loop's goroutine) and
// returns the call that sends it, its answer in the classic bus's shape.
func (r *run) call(batch []int) func(context.Context) sent {
	if r.p.ordered == nil {
		in := r.request(batch)
		return func(ctx context.Context) sent {
			out, err := r.p.api.PutEvents(ctx, in)
			return sent{out: out, err: err}
		}
	}
	entries := make([]orderedbus.Entry, len(batch))
	for j, i := range batch {
		it := r.items[i]
		ev := it.Event
		entries[j] = orderedbus.Entry{Source: ev.Source, DetailType: ev.DetailType, Detail: string(ev.Detail), Resources: ev.Resources,
			Time: ev.Time, EventGroupID: orderedbus.GroupID(it.Key), DeduplicationID: DeduplicationID(ev)}
	}
	api := r.p.ordered
	return func(ctx context.Context) sent {
		out, err := api.PutEvents(ctx, entries)
		if err != nil {
			return sent{err: err}
		}
		s := sent{out: &eventbridge.PutEventsOutput{FailedEntryCount: int32(out.FailedEntryCount), Entries: make([]types.PutEventsResultEntry, len(out.Entries))},
			dedup: make([]bool, len(out.Entries))}
		for j, e := range out.Entries {
			if e.OK() {
				s.out.Entries[j] = types.PutEventsResultEntry{EventId: aws.String(e.EventID)}
				s.dedup[j] = e.SuccessCode == orderedbus.Deduplicated
				continue
			}
			s.out.Entries[j] = types.PutEventsResultEntry{ErrorCode: aws.String(e.ErrorCode), ErrorMessage: aws.String(e.ErrorMessage)}
		}
		return s
	}
}

// DeduplicationID is an event's id on an ordered bus: its commit LSN and
// its sequence number within the transaction ("16/B374D848:3"), the same
// for every delivery of the same change, so crashes, retries and replays
// inside the bus's window are dropped there.
func DeduplicationID(ev *event.Event) string {
	return ev.LSN.String() + ":" + strconv.FormatUint(uint64(ev.Seq), 10)
}

func (r *run) request(batch []int) *eventbridge.PutEventsInput {
	in := &eventbridge.PutEventsInput{Entries: make([]types.PutEventsRequestEntry, len(batch))}
	for j, i := range batch {
		ev := r.items[i].Event
		e := types.PutEventsRequestEntry{
			Source:     aws.String(ev.Source),
			DetailType: aws.String(ev.DetailType),
			Detail:     aws.String(string(ev.Detail)),
			Resources:  ev.Resources,
		}
		if r.p.cfg.EventBus != "" {
			e.EventBusName = aws.String(r.p.cfg.EventBus)
		}
		if !ev.Time.IsZero() {
			e.Time = aws.Time(ev.Time)
		}
		in.Entries[j] = e
	}
	return in
}

// handle applies a request's outcome to its events.
func (r *run) handle(sendCtx context.Context, s sent) {
	now := time.Now()
	if s.err == nil || sendCtx.Err() == nil {
		r.latencies = append(r.latencies, s.latency)
	}
	throttled := throttledRequest(s.err)
	if s.err == nil && (s.out == nil || len(s.out.Entries) != len(s.batch)) {
		n := 0
		if s.out != nil {
			n = len(s.out.Entries)
		}
		s.err = fmt.Errorf("PutEvents answered %d entries for %d", n, len(s.batch))
	}
	for j, i := range s.batch {
		k := r.keyOf[i]
		r.state[i] = pending
		switch {
		case s.err != nil && sendCtx.Err() != nil:
			// Interrupted by the deadline: not an attempt; it stays pending.
		case s.err != nil:
			r.attempts[i]++
			if throttled {
				r.stats.Throttled++
			}
			switch {
			case retryableRequestError(s.err):
				r.retry(i, now, s.err)
			case len(s.batch) > 1:
				// A refused request may be refused for one entry: each is
				// tried alone before anything is given up.
				r.solo[i] = true
				r.stats.Retries++
			default:
				r.fail(i, s.err)
			}
		case s.out.Entries[j].ErrorCode == nil:
			r.state[i] = accepted
			r.stats.Accepted++
			if s.dedup != nil && s.dedup[j] {
				r.stats.Deduplicated++
			}
			if t := r.items[i].Event.Time; !t.IsZero() {
				r.lags = append(r.lags, s.at.Sub(t))
			}
			k.pos++
		default:
			e := s.out.Entries[j]
			err := &EntryError{Code: aws.ToString(e.ErrorCode), Message: aws.ToString(e.ErrorMessage)}
			r.attempts[i]++
			if err.Code == "ThrottlingException" {
				r.stats.Throttled++
			}
			if retryableEntryCodes[err.Code] {
				r.retry(i, now, err)
			} else {
				r.fail(i, err)
			}
		}
		if !k.done() && !k.blocked {
			heap.Push(&r.ready, k)
		}
	}
}

func (r *run) retry(i int, now time.Time, err error) {
	if r.attempts[i] >= r.p.cfg.MaxAttempts {
		r.fail(i, fmt.Errorf("gave up after %d attempts: %w", r.attempts[i], err))
		return
	}
	r.stats.Retries++
	r.notBefore[i] = now.Add(r.p.cfg.Backoff.Delay(r.attempts[i] - 1))
}

func (r *run) fail(i int, err error) {
	r.state[i] = failed
	r.stats.Failed++
	r.keyOf[i].blocked = true
	it := &r.items[i]
	r.stopAt = min(r.stopAt, it.Record+1)
	if r.errRecord < 0 || it.Record < r.errRecord {
		r.errRecord = it.Record
		r.firstErr = fmt.Errorf("%s.%s lsn %s seq %d: %w", it.Event.Schema, it.Event.Table, it.Event.LSN, it.Event.Seq, err)
	}
	r.p.cfg.Logger.Error("event not published", zap.Int("record", it.Record), zap.String("schema", it.Event.Schema), zap.String("table", it.Event.Table),
		zap.Stringer("lsn", it.Event.LSN), zap.Uint32("seq", it.Event.Seq), zap.Int("attempts", r.attempts[i]), zap.Error(err))
}

func (r *run) result(ctx context.Context) Result {
	res := Result{FirstUnpublished: -1, Stats: r.stats, Latencies: r.latencies, Lags: r.lags}
	for i := range r.items {
		if r.state[i] == accepted || r.state[i] == dropped {
			continue
		}
		if res.FirstUnpublished < 0 || r.items[i].Record < res.FirstUnpublished {
			res.FirstUnpublished = r.items[i].Record
		}
	}
	switch {
	case res.FirstUnpublished < 0:
	case r.errRecord == res.FirstUnpublished:
		res.Err = r.firstErr
	default:
		cause := context.Cause(ctx)
		if cause == nil {
			cause = errors.New("deadline margin reached")
		}
		res.Err = fmt.Errorf("record %d not fully published before the deadline: %w", res.FirstUnpublished, cause)
	}
	return res
}

// throttledRequest reports whether a PutEvents call was refused whole for
// throttling.
func throttledRequest(err error) bool {
	if err == nil {
		return false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusTooManyRequests {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "ThrottlingException" || ae.ErrorCode() == "TooManyRequestsException")
}

// retryableRequestError reports whether a failed PutEvents call is worth
// repeating: throttling, server-side failures and transport errors are;
// validation and permission errors are not.
func retryableRequestError(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if s := re.HTTPStatusCode(); s >= 500 || s == http.StatusTooManyRequests {
			return true
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "InternalFailure", "InternalException", "ServiceUnavailable", "ServiceUnavailableException",
			"RequestTimeout", "RequestTimeoutException", "TooManyRequestsException":
			return true
		}
		return ae.ErrorFault() == smithy.FaultServer
	}
	return true // no answer from the service: a transport error
}

// readyHeap holds the keys whose head event may be sent, ordered by that
// event's position so that requests fill in source order.
type readyHeap []*keyQueue

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(a, b int) bool { return h[a].head() < h[b].head() }
func (h readyHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *readyHeap) Push(x any)        { *h = append(*h, x.(*keyQueue)) }
func (h *readyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}
