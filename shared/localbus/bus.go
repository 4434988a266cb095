// Package localbus is a local stand-in for Amazon EventBridge, for
// development: an http.Handler that speaks EventBridge's JSON 1.1 protocol
// (AWSEvents.PutEvents), so fanout and any aws-sdk-go-v2 eventbridge client
// can publish to it through BaseEndpoint or AWS_ENDPOINT_URL_EVENTBRIDGE.
//
// PutEvents is validated as EventBridge does (1 to 10 entries, the entries'
// total size by the documented calculation within MaxRequestBytes, Source,
// DetailType and Detail required, Detail a JSON object) and answered with a
// per-entry EventId or ErrorCode/ErrorMessage and FailedEntryCount; a request
// that breaks a request-wide rule gets a 400 ValidationException. Each
// accepted entry becomes the event EventBridge would deliver and is matched,
// with package pattern, against the rules of the bus it was sent to. The bus
// writes every event and its matches to Options.Out as a readable block, keeps
// them in memory (Records), and optionally as JSON lines.
//
// # Rules
//
// Load reads rules from CloudFormation/SAM templates (see Load) and from dev
// rule files, DIR/dev-rules/*.json, each holding one rule or an array of them:
//
//	{
//	  "Name": "UsersInsertHook",
//	  "EventBusName": "walbridge",
//	  "EventPattern": {"detail-type": ["DatabaseEvent"], "detail": {"operation": ["insert"]}},
//	  "Targets": [{"Id": "hook", "Url": "http://127.0.0.1:9000/hook", "ResolveReferences": true}]
//	}
//
// Name, EventPattern (an object, or a string holding one) and Targets are
// required. EventBusName is a bus name or ARN; without it the rule is on the
// default bus, as in EventBridge, and "*" puts it on every bus. Unknown keys
// are refused, so a misspelt key is reported rather than ignored. A target
// with "ResolveReferences": true gets each event with the claim check's S3
// references replaced by their values (Options.Resolve).
//
// A Watcher sees the rules folder's files change and SetRules applies what
// it reloads from the next event on; Load warns about two rules of one name
// on one bus (RuleSet.Duplicates).
//
// # Delivery
//
// Template targets are only named in the event log, unless package localfn
// runs them (a Lambda function whose code is beside its template): then,
// like a dev rule target, each matching event is POSTed as JSON to its URL
// (the function's invocation endpoint) by a worker of its own, in order, so
// PutEvents never waits for it. A function's answer in Lambda's error form
// is a failed delivery. Like EventBridge, a connection
// error, a 5xx or a 429 is retried with exponential backoff and full jitter
// until the RetryPolicy's attempts or event age run out; any other status is
// final. Close stops the workers, abandoning what they have not delivered.
//
// # The ordered bus
//
// A POST to putevents.OrderedPath is PutEvents of an ordered bus
// (EventBridge's Custom Event Bus, rpcv2Cbor), as fanout sends it for an
// event-busv2 ARN: entries are checked like the classic bus's, a
// DeduplicationId its event group had within putevents.DedupeWindow is
// answered DEDUPLICATED and not delivered again, and accepted events go,
// in request order (so each group in order), to the subscribers
// (AWS::EventsV2::Subscriber) loaded from templates and to dev rules.
// Template rules see only classic buses' events, subscribers only ordered
// ones. A subscriber's DATA filter is matched against the event, its
// SYSTEM_METADATA filter against {"EventGroupId", "DeduplicationId"}.
//
// Size: about 1,100 lines for one development tool: the PutEvents endpoint,
// rule loading (rules.go) and delivery to HTTP targets (deliver.go) share
// the Bus and its event log. Package eventbridgetest builds on it.
package localbus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/walbridge/walbridge/shared/putevents"
)

// Account is the account ID of every event the bus delivers.
const Account = "000000000000"

// DefaultRegion is the region when Options.Region is empty.
const DefaultRegion = "us-east-1"

// Options shapes a Bus. The zero value is usable.
type Options struct {
	// Region is the events' region (DefaultRegion when empty).
	Region string
	// MaxRequestBytes limits a PutEvents request's entries together, by the
	// documented entry size (default 1 MiB).
	MaxRequestBytes int
	// Out receives a readable block per event (one line with Compact) and
	// a line per delivery outcome; nil discards them.
	Out io.Writer
	// Compact writes one line per event to Out (its table, operation, first
	// column, changed columns and the rules it matched with their files)
	// instead of the event's whole JSON.
	Compact bool
	// JSONLines, when set, receives each Record as one line of JSON.
	JSONLines io.Writer
	// Retry governs deliveries to HTTP targets.
	Retry RetryPolicy
	// QueueSize bounds each HTTP target's queue of undelivered events
	// (default 1000); an event that finds it full is dropped and logged.
	QueueSize int
	// Client sends to HTTP targets (default: a client with a 5 s timeout,
	// EventBridge's timeout for API destinations).
	Client *http.Client
	// MaxRecords bounds what Records and Deliveries keep, the oldest
	// forgotten first (default 10000), so a long session does not grow
	// without end.
	MaxRecords int
	// Resolve replaces the claim-check references of an event's detail by
	// their values, for targets that ask (Target.Resolve); nil sends such
	// targets the event as it is.
	Resolve func(ctx context.Context, detail []byte) ([]byte, error)
	// Hooks let a stand-in built on the bus watch PutEvents and inject
	// failures into it (package eventbridgetest does); the zero value does
	// neither.
	Hooks Hooks
}

// Hooks watch and shape PutEvents. Each is optional and may be called from
// concurrent requests.
type Hooks struct {
	// Request is told of each PutEvents request that decodes, with its
	// validation error (nil when it is valid). For a valid request it may
	// return an error that fails the request whole (throttling, a 500).
	Request func(entries []putevents.Entry, invalid *putevents.Error) *putevents.Error
	// Entry is told of each entry of a valid request, with its validation
	// result (an empty code when it is valid). It returns the entry's fate:
	// the code and message it was given, or for a valid entry a failure of
	// its own choosing.
	Entry func(e putevents.Entry, code, message string) (string, string)
	// Accepted is told of each accepted entry and the id it was given, in
	// acceptance order within a request.
	Accepted func(e putevents.Entry, id string)
}

// Record is one event the bus accepted: the bus it was sent to, the event as
// delivered, and the rules it matched. Group and DeduplicationID are an
// ordered bus's SystemMetadata.
type Record struct {
	Bus             string  `json:"bus"`
	Ordered         bool    `json:"ordered,omitempty"`
	Group           string  `json:"group,omitempty"`
	DeduplicationID string  `json:"deduplicationId,omitempty"`
	Event           Event   `json:"event"`
	Matches         []Match `json:"matches"`
}

// Match is one rule an event matched, with its targets as Target.String
// shows them.
type Match struct {
	Rule    string   `json:"rule"`
	File    string   `json:"file,omitempty"` // where the rule is defined
	Targets []string `json:"targets"`
}

// Bus is the local event bus. Create it with New, serve it as an
// http.Handler, and Close it to stop delivery workers.
type Bus struct {
	opts Options

	rulesMu sync.RWMutex
	rules   []Rule
	workers map[*Target]*worker // HTTP targets of rules, by the rule's own Target
	all     []*worker           // every worker started, for Close

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	outMu  sync.Mutex      // Out and JSONLines, and hinted
	hinted map[string]bool // tables whose missing old values Compact explained

	dedupe putevents.Deduper // the ordered buses' DeduplicationIds

	mu           sync.Mutex
	closed       bool
	records      []Record
	deliveries   []Delivery
	deduplicated int
	watchers     map[int]Watchers
	nextWatcher  int
}

// Watchers are told of the bus's events as they happen (see Bus.Watch).
// Either may be nil. They are called on the bus's own goroutines (a
// PutEvents request, a delivery worker), in order for each, and must not
// block: a slow consumer queues or drops on its side.
type Watchers struct {
	// Record is called with each event the bus accepts, in the order
	// Records keeps them.
	Record func(Record)
	// Delivery is called with each delivery to an HTTP or function target
	// when it finishes.
	Delivery func(Delivery)
}

// Watch calls w from now on, until the returned stop is called.
func (b *Bus) Watch(w Watchers) (stop func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watchers == nil {
		b.watchers = map[int]Watchers{}
	}
	id := b.nextWatcher
	b.nextWatcher++
	b.watchers[id] = w
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.watchers, id)
	}
}

// New returns a bus evaluating rules, with a delivery worker running for
// each HTTP target.
func New(rules []Rule, opts Options) *Bus {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 10000
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout:   5 * time.Second,
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
		}
	}
	opts.Retry = opts.Retry.withDefaults()

	b := &Bus{opts: opts}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.SetRules(rules)
	return b
}

// SetRules replaces the rules the bus evaluates (a reload: see Watcher).
// Events accepted from now on are matched against them. An HTTP target the
// old rules had too (same rule, target id and URL) keeps its worker and
// queue, so its deliveries stay in order; a new one gets a worker.
func (b *Bus) SetRules(rules []Rule) {
	type key struct{ rule, id, url string }
	b.rulesMu.Lock()
	defer b.rulesMu.Unlock()
	old := map[key]*worker{}
	for _, w := range b.workers {
		old[key{w.rule, w.target.ID, w.target.URL}] = w
	}
	b.rules, b.workers = make([]Rule, len(rules)), map[*Target]*worker{}
	for i, r := range rules {
		r.Targets = append([]Target(nil), r.Targets...)
		b.rules[i] = r
	}
	for i := range b.rules {
		r := &b.rules[i]
		for j := range r.Targets {
			t := &r.Targets[j]
			if t.URL == "" {
				continue
			}
			w := old[key{r.Name, t.ID, t.URL}]
			if w == nil {
				w = &worker{rule: r.Name, target: *t, queue: make(chan job, b.opts.QueueSize)}
				b.all = append(b.all, w)
				b.wg.Add(1)
				go b.run(w)
			}
			b.workers[t] = w
		}
	}
}

// Close stops the delivery workers and waits for them. Events they had not
// delivered are recorded as abandoned. Close is safe to call more than once.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.rulesMu.RLock()
	defer b.rulesMu.RUnlock()
	for _, w := range b.all {
		for drained := false; !drained; {
			select {
			case j := <-w.queue:
				b.finish(w, j, 0, false, "bus closed before delivery", "")
			default:
				drained = true
			}
		}
	}
	b.opts.Client.CloseIdleConnections()
	return nil
}

// appendBounded appends v, forgetting the oldest elements beyond max.
func appendBounded[T any](s []T, v T, max int) []T {
	if len(s) >= max {
		s = s[len(s)-max+1:]
	}
	return append(s, v)
}

// Records returns the events accepted so far (the last Options.MaxRecords),
// in acceptance order.
func (b *Bus) Records() []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Record(nil), b.records...)
}

// ServeHTTP answers EventBridge's JSON 1.1 protocol: PutEvents, plus a
// minimal DescribeEventBus and ListRules; other operations get an
// UnknownOperationException. A POST to putevents.OrderedPath is an ordered
// bus's PutEvents (rpcv2Cbor).
func (b *Bus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == putevents.OrderedPath {
		b.putOrderedEvents(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); r.Method != http.MethodPost || !strings.HasPrefix(ct, contentTypeJSON11) {
		writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: fmt.Sprintf("expected a POST of %s, got %s %q", contentTypeJSON11, r.Method, ct)})
		return
	}
	// The body holds Detail escaped inside JSON strings, so it may be larger
	// than the entries' size; the limit only guards memory.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(8*b.opts.MaxRequestBytes)))
	if err != nil {
		writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "ValidationException", Message: "Total size of the entries in the request is over the limit."})
		return
	}
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "AWSEvents.PutEvents":
		b.putEvents(w, body)
	case "AWSEvents.DescribeEventBus":
		b.describeEventBus(w, body)
	case "AWSEvents.ListRules":
		b.listRules(w, body)
	default:
		writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "UnknownOperationException", Message: fmt.Sprintf("localbus does not implement %q", target)})
	}
}

// route matches an accepted event against the rules of its bus (for an
// event of an ordered bus, rec.Ordered, its subscribers), logs it and queues
// it for the HTTP targets of the rules it matched.
func (b *Bus) route(rec Record) {
	ev := rec.Event
	js := marshal(ev, "")
	rec.Matches = []Match{}
	var system []byte
	if rec.Ordered {
		system = marshal(map[string]string{"EventGroupId": rec.Group, "DeduplicationId": rec.DeduplicationID}, "")
	}
	var queued []*worker
	b.rulesMu.RLock()
	defer b.rulesMu.RUnlock()
	for i := range b.rules {
		r := &b.rules[i]
		if r.EventBus != AnyBus && r.EventBus != rec.Bus {
			continue
		}
		if !r.Dev && r.Subscriber != rec.Ordered {
			continue
		}
		if r.Pattern != nil {
			if ok, err := r.Pattern.Match(js); err != nil || !ok {
				continue
			}
		}
		if r.NoMetadata {
			continue
		}
		if r.SystemPattern != nil {
			if ok, err := r.SystemPattern.Match(system); err != nil || !ok {
				continue
			}
		}
		m := Match{Rule: r.Name, File: r.File, Targets: []string{}}
		for j := range r.Targets {
			t := &r.Targets[j]
			m.Targets = append(m.Targets, t.String())
			if w := b.workers[t]; w != nil {
				queued = append(queued, w)
			}
		}
		rec.Matches = append(rec.Matches, m)
	}

	b.mu.Lock()
	b.records = appendBounded(b.records, rec, b.opts.MaxRecords)
	for _, w := range b.watchers {
		if w.Record != nil {
			w.Record(rec)
		}
	}
	b.mu.Unlock()
	b.logRecord(rec)

	accepted := time.Now()
	for _, w := range queued {
		b.enqueue(w, job{id: ev.ID, body: js, accepted: accepted})
	}
}

// logRecord writes a record's readable block, and its JSON line.
func (b *Bus) logRecord(rec Record) {
	var s strings.Builder
	if b.opts.Compact {
		line, table, noOld := compactLine(rec)
		s.WriteString(line)
		s.WriteByte('\n')
		b.outMu.Lock()
		defer b.outMu.Unlock()
		if noOld && !b.hinted[table] {
			if b.hinted == nil {
				b.hinted = map[string]bool{}
			}
			b.hinted[table] = true
			fmt.Fprintf(&s, "  hint: updates of %s carry no old values, so changedValues can only name key columns; "+
				"ALTER TABLE %s REPLICA IDENTITY FULL; sends the whole old row\n", table, table)
		}
		io.WriteString(b.opts.Out, s.String())
		if b.opts.JSONLines != nil {
			b.opts.JSONLines.Write(append(marshal(rec, ""), '\n'))
		}
		return
	}
	fmt.Fprintf(&s, "event %s on bus %s\n%s\n", rec.Event.ID, rec.Bus, marshal(rec.Event, "  "))
	if len(rec.Matches) == 0 {
		s.WriteString("  no rule matched\n")
	}
	for _, m := range rec.Matches {
		if len(m.Targets) == 0 {
			fmt.Fprintf(&s, "  matched rule %s%s (no targets)\n", m.Rule, inFile(m.File))
		}
		for _, t := range m.Targets {
			fmt.Fprintf(&s, "  matched rule %s%s → target %s\n", m.Rule, inFile(m.File), t)
		}
	}
	b.outMu.Lock()
	defer b.outMu.Unlock()
	io.WriteString(b.opts.Out, s.String())
	if b.opts.JSONLines != nil {
		b.opts.JSONLines.Write(append(marshal(rec, ""), '\n'))
	}
}

// logf writes one line to Out.
func (b *Bus) logf(format string, args ...any) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	fmt.Fprintf(b.opts.Out, format+"\n", args...)
}

func (b *Bus) describeEventBus(w http.ResponseWriter, body []byte) {
	var in struct{ Name string }
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: err.Error()})
			return
		}
	}
	name := busName(in.Name)
	writeJSON(w, http.StatusOK, map[string]string{"Name": name, "Arn": b.busArn(name)})
}

func (b *Bus) listRules(w http.ResponseWriter, body []byte) {
	var in struct{ EventBusName, NamePrefix string }
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: err.Error()})
			return
		}
	}
	bus := busName(in.EventBusName)
	type rule struct{ Name, Arn, EventBusName, EventPattern, State string }
	out := struct{ Rules []rule }{Rules: []rule{}}
	b.rulesMu.RLock()
	defer b.rulesMu.RUnlock()
	for _, r := range b.rules {
		if (r.EventBus != AnyBus && r.EventBus != bus) || !strings.HasPrefix(r.Name, in.NamePrefix) {
			continue
		}
		arn := fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", b.opts.Region, Account, r.Name)
		if bus != DefaultBus {
			arn = fmt.Sprintf("arn:aws:events:%s:%s:rule/%s/%s", b.opts.Region, Account, bus, r.Name)
		}
		out.Rules = append(out.Rules, rule{Name: r.Name, Arn: arn, EventBusName: bus, EventPattern: string(r.PatternJSON), State: "ENABLED"})
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *Bus) busArn(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", b.opts.Region, Account, name)
}

func inFile(f string) string {
	if f == "" {
		return ""
	}
	return " (" + f + ")"
}

// compactLine is an event in one line: for a DatabaseEvent
// "public.users update id=7 changed: email → UsersHook (infra/x.yaml)";
// for anything else its source and detail-type. It also returns the table
// and whether the event is an update without old values.
func compactLine(rec Record) (line, table string, noOld bool) {
	var d struct {
		Schema, Table, Operation string
		NewValues, OldValues     json.RawMessage
		ChangedValues            []string
		Backfill                 string
	}
	var s strings.Builder
	if json.Unmarshal(rec.Event.Detail, &d) == nil && d.Table != "" && d.Operation != "" {
		fmt.Fprintf(&s, "%s.%s %s", d.Schema, d.Table, d.Operation)
		values := d.NewValues
		if len(values) == 0 {
			values = d.OldValues
		}
		if col, val, ok := firstValue(values); ok {
			fmt.Fprintf(&s, " %s=%s", col, val)
		}
		table = d.Schema + "." + d.Table
		if d.Operation == "update" {
			changed := strings.Join(d.ChangedValues, ", ")
			if changed == "" {
				changed = "-"
			}
			fmt.Fprintf(&s, " changed: %s", changed)
			noOld = len(d.OldValues) == 0
		}
		if d.Backfill != "" {
			fmt.Fprintf(&s, " (backfill %s)", d.Backfill)
		}
	} else {
		fmt.Fprintf(&s, "%s %s", rec.Event.Source, rec.Event.DetailType)
	}
	if len(rec.Matches) == 0 {
		s.WriteString(" → no rule matched")
	}
	for i, m := range rec.Matches {
		sep := ", "
		if i == 0 {
			sep = " → "
		}
		s.WriteString(sep + m.Rule + inFile(m.File))
	}
	return s.String(), table, noOld
}

// firstValue is the first column of a values object and its value, short.
func firstValue(values json.RawMessage) (string, string, bool) {
	dec := json.NewDecoder(bytes.NewReader(values))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", "", false
	}
	t, err := dec.Token()
	col, ok := t.(string)
	if err != nil || !ok {
		return "", "", false
	}
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := dec.Decode(&v); err != nil {
		return "", "", false
	}
	val := string(v.Value)
	if len(val) > 40 {
		val = val[:40] + "…"
	}
	return col, val, true
}
