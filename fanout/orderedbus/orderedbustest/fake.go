// Package orderedbustest is an in-test ordered EventBridge bus: an HTTP
// server speaking the EventBridgeV2 PutEvents protocol (rpcv2Cbor) that
// checks requests against the API's documented shape and limits, delivers
// accepted events in order per EventGroupId, drops repeats of a
// DeduplicationId within the five-minute window (answering DEDUPLICATED),
// and injects entry failures and request throttling when asked.
//
// It decodes request bodies with github.com/fxamacker/cbor, a CBOR library
// independent of the one the client encodes with (smithy-go's), strictly:
// unknown members, duplicate keys and wrong types fail the request, so a
// test through it is a differential test of the client's encoding.
package orderedbustest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// DedupeWindow is how long a DeduplicationId suppresses repeats.
const DedupeWindow = 5 * time.Minute

// Options configure a Fake.
type Options struct {
	// Bus is the one bus ARN the fake accepts.
	Bus string
	// FailRate is the fraction of entries that fail (ErrorCode
	// InternalFailure or ThrottlingException, alternately).
	FailRate float64
	// ThrottleEvery makes every Nth request fail whole with a 429
	// ThrottlingException (0: never).
	ThrottleEvery int
	// Now is the fake's clock (default time.Now).
	Now func() time.Time
	// Seed makes the injected failures repeatable.
	Seed uint64
}

// Delivered is one event as a FIFO subscriber of its group receives it.
type Delivered struct {
	Group, DeduplicationID, Source, DetailType, Detail string
	Time                                               time.Time
}

// Stats counts what the fake did.
type Stats struct {
	Requests, Throttled, Published, Deduplicated, Failed int
}

// Fake is a running in-test ordered bus.
type Fake struct {
	URL  string
	opts Options

	mu      sync.Mutex
	rng     *rand.Rand
	seen    map[string]time.Time
	groups  map[string][]Delivered
	order   []Delivered
	stats   Stats
	lastErr string
}

// Start runs a fake until the test ends.
func Start(t testing.TB, opts Options) *Fake {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Fake{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 7)), seen: map[string]time.Time{}, groups: map[string][]Delivered{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// request and entry are the documented PutEventsRequest shapes.
type request struct {
	EventBusArn                string        `cbor:"EventBusArn"`
	Entries                    []entry       `cbor:"Entries"`
	DeduplicationConfiguration *dedupeConfig `cbor:"DeduplicationConfiguration"`
}

type dedupeConfig struct {
	DeduplicationType string `cbor:"DeduplicationType"`
}

type entry struct {
	Source         *string    `cbor:"Source"`
	DetailType     *string    `cbor:"DetailType"`
	Detail         *string    `cbor:"Detail"`
	Resources      []string   `cbor:"Resources"`
	Time           *time.Time `cbor:"Time"`
	SystemMetadata *struct {
		EventGroupID    *string `cbor:"EventGroupId"`
		DeduplicationID *string `cbor:"DeduplicationId"`
	} `cbor:"SystemMetadata"`
}

type result struct {
	EventID        string `cbor:"EventId,omitempty"`
	SequenceNumber string `cbor:"SequenceNumber,omitempty"`
	SuccessCode    string `cbor:"SuccessCode,omitempty"`
	ErrorCode      string `cbor:"ErrorCode,omitempty"`
	ErrorMessage   string `cbor:"ErrorMessage,omitempty"`
}

type response struct {
	FailedEntryCount int      `cbor:"FailedEntryCount"`
	Entries          []result `cbor:"Entries"`
}

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		TimeTag: cbor.DecTagRequired}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

var dedupeID = regexp.MustCompile(`^[\s\S]*[^\x{0009}-\x{000D}\x{001C}-\x{0020}\x{1680}\x{2000}-\x{2006}\x{2008}-\x{200A}\x{2028}\x{2029}\x{205F}\x{3000}][\s\S]*$`)

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/service/AWSEventsV2/operation/PutEvents" {
		f.fail(w, 404, "UnknownOperationException", "no such operation "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || r.Header.Get("Content-Type") != "application/cbor" {
		f.fail(w, 400, "InvalidInputException", "want Smithy-Protocol rpc-v2-cbor and Content-Type application/cbor")
		return
	}
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/events/aws4_request") {
		f.fail(w, 403, "AccessDeniedException", "request not signed with SigV4 for events")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.fail(w, 400, "InvalidInputException", "read body")
		return
	}
	var req request
	if err := decMode.Unmarshal(body, &req); err != nil {
		f.fail(w, 400, "SerializationException", "body does not decode as PutEventsRequest: "+err.Error())
		return
	}
	if err := f.check(&req); err != nil {
		f.fail(w, 400, "InvalidInputException", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Requests++
	if f.opts.ThrottleEvery > 0 && f.stats.Requests%f.opts.ThrottleEvery == 0 {
		f.stats.Throttled++
		f.writeError(w, 429, "ThrottlingException", "rate exceeded")
		return
	}
	now := f.opts.Now()
	out := response{Entries: make([]result, len(req.Entries))}
	for i, e := range req.Entries {
		if f.opts.FailRate > 0 && f.rng.Float64() < f.opts.FailRate {
			code := "InternalFailure"
			if f.stats.Failed%2 == 1 {
				code = "ThrottlingException"
			}
			f.stats.Failed++
			out.FailedEntryCount++
			out.Entries[i] = result{ErrorCode: code, ErrorMessage: "injected failure"}
			continue
		}
		d := Delivered{Source: *e.Source, DetailType: *e.DetailType}
		if e.Detail != nil {
			d.Detail = *e.Detail
		}
		if e.Time != nil {
			// Epoch seconds as a double: the service keeps milliseconds.
			d.Time = e.Time.Round(time.Millisecond)
		}
		if sm := e.SystemMetadata; sm != nil {
			if sm.EventGroupID != nil {
				d.Group = *sm.EventGroupID
			}
			if sm.DeduplicationID != nil {
				d.DeduplicationID = *sm.DeduplicationID
			}
		}
		if d.DeduplicationID != "" {
			if at, ok := f.seen[d.DeduplicationID]; ok && now.Sub(at) < DedupeWindow {
				f.stats.Deduplicated++
				out.Entries[i] = result{EventID: fmt.Sprintf("dup-%d", f.stats.Deduplicated), SuccessCode: "DEDUPLICATED"}
				continue
			}
			f.seen[d.DeduplicationID] = now
		}
		f.stats.Published++
		f.groups[d.Group] = append(f.groups[d.Group], d)
		f.order = append(f.order, d)
		out.Entries[i] = result{EventID: fmt.Sprintf("ev-%d", f.stats.Published), SequenceNumber: fmt.Sprint(len(f.groups[d.Group])), SuccessCode: "PUBLISHED"}
	}
	b, err := cbor.Marshal(out)
	if err != nil {
		f.writeError(w, 500, "InternalException", "encode answer")
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	_, _ = w.Write(b)
}

// check applies the model's constraints to a request.
func (f *Fake) check(req *request) error {
	if req.EventBusArn != f.opts.Bus {
		return fmt.Errorf("no bus %q", req.EventBusArn)
	}
	if n := len(req.Entries); n < 1 || n > 100 {
		return fmt.Errorf("%d entries, want 1 to 100", n)
	}
	if c := req.DeduplicationConfiguration; c != nil && c.DeduplicationType != "CONTENT_BASED" {
		return fmt.Errorf("DeduplicationType %q", c.DeduplicationType)
	}
	for i, e := range req.Entries {
		switch {
		case e.Source == nil || len(*e.Source) < 1 || len(*e.Source) > 256:
			return fmt.Errorf("entry %d: Source missing or not 1 to 256 long", i)
		case e.DetailType == nil || len(*e.DetailType) < 1 || len(*e.DetailType) > 128:
			return fmt.Errorf("entry %d: DetailType missing or not 1 to 128 long", i)
		case len(e.Resources) > 100:
			return fmt.Errorf("entry %d: more than 100 resources", i)
		}
		if sm := e.SystemMetadata; sm != nil {
			if g := sm.EventGroupID; g != nil && (len(*g) < 1 || len(*g) > 128) {
				return fmt.Errorf("entry %d: EventGroupId not 1 to 128 long", i)
			}
			if d := sm.DeduplicationID; d != nil && (len(*d) < 1 || len(*d) > 128 || !dedupeID.MatchString(*d)) {
				return fmt.Errorf("entry %d: DeduplicationId not 1 to 128 long with a non-space", i)
			}
		}
	}
	return nil
}

func (f *Fake) fail(w http.ResponseWriter, status int, code, msg string) {
	f.mu.Lock()
	f.lastErr = code + ": " + msg
	f.mu.Unlock()
	f.writeError(w, status, code, msg)
}

func (f *Fake) writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := cbor.Marshal(map[string]string{"__type": "com.amazonaws.eventbridgev2#" + code, "message": msg})
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Group returns what a FIFO subscriber has received for one group, in order.
func (f *Fake) Group(id string) []Delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivered(nil), f.groups[id]...)
}

// All returns every delivered event in acceptance order.
func (f *Fake) All() []Delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivered(nil), f.order...)
}

// Stats returns the counters.
func (f *Fake) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// LastError is the last request the fake refused as malformed, if any.
func (f *Fake) LastError() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}
