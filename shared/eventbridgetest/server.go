// Package eventbridgetest is walbridge's one in-test Amazon EventBridge
// endpoint. It speaks the JSON 1.1 protocol (POST /, X-Amz-Target
// AWSEvents.<Operation>) that the real aws-sdk-go-v2 eventbridge client uses,
// through BaseEndpoint or AWS_ENDPOINT_URL_EVENTBRIDGE.
//
// PutEvents is the local bus's (package localbus): the same validation, by
// package putevents's rules, and the same answers, so a test and a developer
// see one EventBridge. On top of it the Server injects what AWS does under
// load, per Options: entries failing with ThrottlingException or
// InternalFailure inside a 200 answer, whole requests failing with a 400
// ThrottlingException or a 500, entries refused by a test's Reject, and
// latency. It keeps the accepted entries in acceptance order (Events) and
// counts what it saw (Stats).
//
// The control plane that provisioning uses is served too: CreateEventBus,
// PutRule and PutTargets, with EventBridge's constraints (see control.go),
// each call kept in an awstest.Log. Fail makes any operation, PutEvents
// included, answer with an error.
package eventbridgetest

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/localbus"
)

// Options shapes a Server. The zero value accepts every valid entry on any
// bus with the 1 MiB request limit, in account 000000000000 in us-east-1.
type Options struct {
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
	Reject func(Event) (code, message string)
	// Latency delays every response, like a real round trip.
	Latency time.Duration
	// Seed makes the failures reproducible (default 1).
	Seed uint64
	// Discard counts accepted entries without keeping them (benchmarks).
	Discard bool

	// Region and Account make the ARNs (defaults us-east-1, 000000000000).
	awstest.Place
	// RejectTarget, when set, is asked about every otherwise valid target
	// of a PutTargets call; a non-empty code fails that target in the
	// answer's FailedEntries, the way EventBridge reports a partial failure
	// (the call itself succeeds).
	RejectTarget func(rule string, t Target) (code, message string)
	// Log receives the control-plane calls; nil gives the Server a Log of
	// its own. (PutEvents calls are counted in Stats, not logged.)
	Log *awstest.Log
}

// Event is one entry the Server accepted (or is asked about by Reject).
type Event struct {
	EventID      string
	EventBusName string // as sent; empty means the default bus
	Source       string
	DetailType   string
	Detail       string
	Resources    []string
	Time         time.Time // zero when the entry had no Time
}

// Stats counts the PutEvents calls the Server saw.
type Stats struct {
	Requests         int // PutEvents calls received, failed ones included
	Entries          int // entries in those calls
	Accepted         int // entries accepted
	Throttled        int // entries failed with ThrottlingException
	InternalFailures int // entries failed with InternalFailure
	InvalidEntries   int // entries failed validation or Reject
	RequestErrors    int // whole requests failed on purpose (throttles, 500s, Fail)
	Rejected         int // whole requests refused by validation
}

// Server is the endpoint.
type Server struct {
	awstest.Endpoint // AWS_ENDPOINT_URL_EVENTBRIDGE; Log: the control-plane calls
	bus              *localbus.Bus
	opts             Options

	mu    sync.Mutex                  // the control plane
	buses map[string]map[string]*Rule // bus name -> rule name -> rule

	pmu    sync.Mutex // PutEvents
	rng    *rand.Rand
	events []Event
	stats  Stats
}

// Start starts a Server for the test and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// New starts a Server; the caller must Close it.
func New(opts Options) *Server {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	opts.Place = opts.Place.WithDefaults()
	s := &Server{opts: opts, buses: map[string]map[string]*Rule{"default": {}},
		rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x243f6a8885a308d3))}
	s.bus = localbus.New(nil, localbus.Options{Region: opts.Region, MaxRequestBytes: opts.MaxRequestBytes, MaxRecords: 1,
		Hooks: localbus.Hooks{Request: s.request, Entry: s.entry, Accepted: s.accepted}})
	s.Serve(s.serve, opts.Log)
	return s
}

// Close stops the endpoint and its bus.
func (s *Server) Close() {
	s.Endpoint.Close()
	s.bus.Close()
}

// Client is a real SDK client for the Server at url.
func Client(tb testing.TB, url string, optFns ...func(*eventbridge.Options)) *eventbridge.Client {
	opts := append([]func(*eventbridge.Options){func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(url) }}, optFns...)
	return eventbridge.NewFromConfig(awstest.Config(tb), opts...)
}

// Events returns the accepted entries in acceptance order.
func (s *Server) Events() []Event {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return append([]Event(nil), s.events...)
}

// Stats returns the PutEvents counters.
func (s *Server) Stats() Stats {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.stats
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Latency > 0 {
		select {
		case <-time.After(s.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	switch op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AWSEvents."); op {
	case "CreateEventBus", "PutRule", "PutTargets":
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), eventsJSON) {
			eventsError(w, http.StatusBadRequest, "UnknownOperationException", "not a JSON 1.1 EventBridge request ("+r.Method+" "+r.URL.Path+")")
			return
		}
		s.control(w, r, op)
	default:
		s.bus.ServeHTTP(w, r)
	}
}
