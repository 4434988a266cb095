package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/walbridge/walbridge/shared/putevents"
)

// FakeEventBridgeOptions shapes a FakeEventBridge. The zero value accepts
// every valid entry on any bus, with the 1 MiB request limit.
type FakeEventBridgeOptions struct {
	// MaxRequestBytes is the limit on a request's entries together, counted
	// the way PutEvents documents (default 1 MiB; 256 KiB on older accounts).
	MaxRequestBytes int

	// ThrottleFraction of entries fail with ThrottlingException and
	// InternalFailureFraction with InternalFailure (per entry, inside a 200
	// response): the retryable entry errors.
	ThrottleFraction        float64
	InternalFailureFraction float64
	// ThrottleRequestFraction of requests fail whole with HTTP 400
	// ThrottlingException, ServerErrorFraction with HTTP 500 InternalFailure.
	// Nothing of a failed request is kept.
	ThrottleRequestFraction float64
	ServerErrorFraction     float64
	// Reject, when set, is asked about every otherwise valid entry; a
	// non-empty code fails the entry with that (non-retryable) ErrorCode.
	Reject func(FakeEvent) (code, message string)
	// Latency delays every response, like a real round trip.
	Latency time.Duration
	// Seed makes the failures reproducible (default 1).
	Seed uint64
	// Discard counts accepted entries without keeping them (benchmarks).
	Discard bool
}

// FakeEvent is one entry the fake accepted (or is asked about by Reject).
type FakeEvent struct {
	EventID      string
	EventBusName string // as sent; empty means the default bus
	Source       string
	DetailType   string
	Detail       string
	Resources    []string
	Time         time.Time // zero when the entry had no Time
}

// FakeEventBridgeStats counts what the fake saw.
type FakeEventBridgeStats struct {
	Requests         int // PutEvents calls received, failed ones included
	Entries          int // entries in those calls
	Accepted         int // entries accepted
	Throttled        int // entries failed with ThrottlingException
	InternalFailures int // entries failed with InternalFailure
	InvalidEntries   int // entries failed validation or Reject
	RequestErrors    int // whole requests failed on purpose (throttles and 500s)
	Rejected         int // whole requests refused by validation
}

// FakeEventBridge is an in-process EventBridge endpoint speaking the JSON 1.1
// protocol (X-Amz-Target AWSEvents.PutEvents) that aws-sdk-go-v2's
// eventbridge client uses. It validates like AWS, with the rules of package
// putevents that the local bus applies too: 1 to 10 entries, the entries'
// total size by the documented PutEvents calculation within the limit, the
// bus name's form, at least one complete entry, and per entry the required
// Source, DetailType and Detail, Detail being a JSON object (integers in
// int64's range). Entry problems are per-entry ErrorCode/ErrorMessage with
// FailedEntryCount, request problems a 400 ValidationException. Like AWS it accepts events for
// a bus that does not exist. It keeps the accepted entries in acceptance
// order and ignores signatures.
type FakeEventBridge struct {
	// URL is the endpoint, for eventbridge.Options.BaseEndpoint or
	// AWS_ENDPOINT_URL_EVENTBRIDGE.
	URL string

	srv  *httptest.Server
	opts FakeEventBridgeOptions

	mu     sync.Mutex
	rng    *rand.Rand
	nextID uint64
	events []FakeEvent
	stats  FakeEventBridgeStats
}

// StartFakeEventBridge starts a FakeEventBridge for the test and stops it
// when the test ends.
func StartFakeEventBridge(tb testing.TB, opts FakeEventBridgeOptions) *FakeEventBridge {
	tb.Helper()
	f := NewFakeEventBridge(opts)
	tb.Cleanup(f.Close)
	return f
}

// NewFakeEventBridge starts a FakeEventBridge; the caller must Close it.
func NewFakeEventBridge(opts FakeEventBridgeOptions) *FakeEventBridge {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	f := &FakeEventBridge{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x243f6a8885a308d3))}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *FakeEventBridge) Close() { f.srv.Close() }

// Events returns the accepted entries in acceptance order.
func (f *FakeEventBridge) Events() []FakeEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeEvent(nil), f.events...)
}

// Stats returns the counters.
func (f *FakeEventBridge) Stats() FakeEventBridgeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// EventBridgeClient is a real SDK client pointed at url (a FakeEventBridge).
func EventBridgeClient(tb testing.TB, url string, optFns ...func(*eventbridge.Options)) *eventbridge.Client {
	opts := append([]func(*eventbridge.Options){func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(url) }}, optFns...)
	return eventbridge.NewFromConfig(AWSConfig(tb), opts...)
}

func (f *FakeEventBridge) serve(w http.ResponseWriter, r *http.Request) {
	if f.opts.Latency > 0 {
		select {
		case <-time.After(f.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		ebError(w, http.StatusBadRequest, "SerializationException", "fake EventBridge speaks application/x-amz-json-1.1 only, got "+ct)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "AWSEvents.PutEvents" {
		ebError(w, http.StatusBadRequest, "UnknownOperationException", "fake EventBridge does not implement "+target)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		ebError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	var in putevents.Request
	if err := json.Unmarshal(body, &in); err != nil {
		ebError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	f.mu.Lock()
	f.stats.Requests++
	f.stats.Entries += len(in.Entries)
	f.mu.Unlock()
	if err := putevents.CheckRequest(in.Entries, f.opts.MaxRequestBytes); err != nil {
		f.mu.Lock()
		f.stats.Rejected++
		f.mu.Unlock()
		ebError(w, err.Status, err.Code, err.Message)
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch p := f.rng.Float64(); {
	case p < f.opts.ThrottleRequestFraction:
		f.stats.RequestErrors++
		ebError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	case p < f.opts.ThrottleRequestFraction+f.opts.ServerErrorFraction:
		f.stats.RequestErrors++
		ebError(w, http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.")
		return
	}
	out := struct {
		Entries          []putevents.ResultEntry `json:"Entries"`
		FailedEntryCount int                     `json:"FailedEntryCount"`
	}{Entries: make([]putevents.ResultEntry, len(in.Entries))}
	for i := range in.Entries {
		e := &in.Entries[i]
		ev := FakeEvent{Source: ebDeref(e.Source), DetailType: ebDeref(e.DetailType), Detail: ebDeref(e.Detail), Resources: e.Resources, EventBusName: ebDeref(e.EventBusName)}
		if e.Time != nil {
			sec, frac := math.Modf(*e.Time)
			ev.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()
		}
		code, msg := putevents.CheckEntry(*e)
		if code == "" && f.opts.Reject != nil {
			code, msg = f.opts.Reject(ev)
		}
		if code == "" {
			switch p := f.rng.Float64(); {
			case p < f.opts.ThrottleFraction:
				f.stats.Throttled++
				code, msg = "ThrottlingException", "Rate exceeded"
			case p < f.opts.ThrottleFraction+f.opts.InternalFailureFraction:
				f.stats.InternalFailures++
				code, msg = "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."
			}
		} else {
			f.stats.InvalidEntries++
		}
		if code != "" {
			out.FailedEntryCount++
			out.Entries[i] = putevents.ResultEntry{ErrorCode: code, ErrorMessage: msg}
			continue
		}
		f.nextID++
		ev.EventID = fmt.Sprintf("00000000-0000-4000-8000-%012x", f.nextID)
		f.stats.Accepted++
		if !f.opts.Discard {
			f.events = append(f.events, ev)
		}
		out.Entries[i] = putevents.ResultEntry{EventID: ev.EventID}
	}
	ebJSON(w, out)
}

func ebDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ebJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		ebError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Header().Set("X-Amzn-Requestid", "fake-eventbridge")
	w.Write(b.Bytes())
}

func ebError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	w.Write(b)
}
