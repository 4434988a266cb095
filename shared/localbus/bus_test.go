package localbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/walbridge/walbridge/shared/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBus serves a bus over real HTTP and returns it with a real SDK client
// pointed at it. Both stop when the test ends.
func testBus(t *testing.T, rules []Rule, opts Options) (*Bus, *eventbridge.Client) {
	t.Helper()
	b := New(rules, opts)
	srv := httptest.NewServer(b)
	t.Cleanup(func() {
		srv.Close()
		b.Close()
	})
	return b, newClient(srv.URL, 1) // one attempt: see every answer as the bus gave it
}

// newClient is a real SDK client for a bus at url, with fixed credentials
// and region so that nothing in the environment changes it.
func newClient(url string, attempts int) *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint:     aws.String(url),
		RetryMaxAttempts: attempts,
	})
}

func loadRules(t *testing.T, dir string) []Rule {
	t.Helper()
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs.Rules
}

// seedEvent is one of the contract's example events.
type seedEvent struct {
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func readSeed(t *testing.T, name string) seedEvent {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev seedEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// entry is the seed event as a PutEvents entry for bus ("": no
// EventBusName, the default bus).
func (s seedEvent) entry(bus string) types.PutEventsRequestEntry {
	e := types.PutEventsRequestEntry{
		Source:     aws.String(s.Source),
		DetailType: aws.String(s.DetailType),
		Resources:  s.Resources,
		Detail:     aws.String(string(s.Detail)),
	}
	if bus != "" {
		e.EventBusName = aws.String(bus)
	}
	return e
}

func putEvents(t *testing.T, c *eventbridge.Client, entries ...types.PutEventsRequestEntry) *eventbridge.PutEventsOutput {
	t.Helper()
	out, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	return out
}

func TestPutEventsDeliveredForm(t *testing.T) {
	var out syncbuf.Buffer
	b, c := testBus(t, loadRules(t, "testdata/infra"), Options{Region: "eu-west-1", Out: &out})
	insert := readSeed(t, "event-insert.json")
	entry := insert.entry("arn:aws:events:eu-west-1:123456789012:event-bus/walbridge")
	entry.Time = aws.Time(time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC))

	before := time.Now().UTC().Truncate(time.Second)
	res := putEvents(t, c, entry, insert.entry("walbridge"))
	if res.FailedEntryCount != 0 || len(res.Entries) != 2 {
		t.Fatalf("FailedEntryCount %d, %d entries; want 0, 2", res.FailedEntryCount, len(res.Entries))
	}

	recs := b.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	ev := recs[0].Event
	if id := aws.ToString(res.Entries[0].EventId); ev.ID != id || len(id) != 36 {
		t.Errorf("event id %q, EventId %q: want the same UUID", ev.ID, id)
	}
	if recs[0].Bus != "walbridge" {
		t.Errorf("bus %q, want walbridge (from the ARN)", recs[0].Bus)
	}

	// The delivered form, as JSON: exactly EventBridge's envelope.
	var got map[string]any
	if err := json.Unmarshal(marshal(ev, ""), &got); err != nil {
		t.Fatal(err)
	}
	var detail any
	json.Unmarshal(insert.Detail, &detail)
	want := map[string]any{
		"version":     "0",
		"id":          ev.ID,
		"detail-type": "DatabaseEvent",
		"source":      "com.benlimmer.Database",
		"account":     "000000000000",
		"time":        "2021-04-28T16:01:22Z",
		"region":      "eu-west-1",
		"resources":   []any{"monolith_database"},
		"detail":      detail,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delivered event:\n got %v\nwant %v", got, want)
	}

	// Without Time, the time of receipt.
	tm, err := time.Parse("2006-01-02T15:04:05Z", recs[1].Event.Time)
	if err != nil || tm.Before(before) || tm.After(time.Now().Add(time.Second)) {
		t.Errorf("time without entry Time = %q (%v), want now", recs[1].Event.Time, err)
	}

	log := out.String()
	if !strings.Contains(log, "event "+ev.ID+" on bus walbridge\n{\n  \"version\": \"0\",\n") {
		t.Errorf("log lacks the indented event:\n%s", log)
	}
	if !strings.Contains(log, "  matched rule UsersInsertRule (testdata/infra/template.yaml) → target WelcomeQueue (AWS::SQS::Queue)\n") {
		t.Errorf("log lacks the match line:\n%s", log)
	}
}

func TestSeedRuleMatchesInsertNotUpdate(t *testing.T) {
	var out syncbuf.Buffer
	var lines bytes.Buffer
	b, c := testBus(t, loadRules(t, "testdata/infra"), Options{Out: &out, JSONLines: &lines})
	insert, update := readSeed(t, "event-insert.json"), readSeed(t, "event-update.json")
	putEvents(t, c, insert.entry("walbridge"), update.entry("walbridge"), insert.entry(""))

	recs := b.Records()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	wantMatches := [][]Match{
		{{Rule: "UsersInsertRule", File: "testdata/infra/template.yaml", Targets: []string{"WelcomeQueue (AWS::SQS::Queue)"}}},
		// The update matches only the rule whose bus is an intrinsic (any bus).
		{{Rule: "AnyBusUpdateRule", File: "testdata/infra/template.yaml", Targets: []string{"audit (arn:aws:sqs:us-east-1:123456789012:audit)"}}},
		// On the default bus the walbridge bus's rules do not apply.
		{},
	}
	for i, want := range wantMatches {
		if !reflect.DeepEqual(recs[i].Matches, want) {
			t.Errorf("record %d matches = %+v, want %+v", i, recs[i].Matches, want)
		}
	}
	if recs[2].Bus != DefaultBus {
		t.Errorf("entry without EventBusName went to bus %q, want default", recs[2].Bus)
	}
	if !strings.Contains(out.String(), "event "+recs[2].Event.ID+" on bus default\n") || !strings.Contains(out.String(), "  no rule matched\n") {
		t.Errorf("log lacks the unmatched event:\n%s", out.String())
	}

	// The JSON lines say the same as Records.
	var fromLines []Record
	dec := json.NewDecoder(&lines)
	for dec.More() {
		var r Record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		fromLines = append(fromLines, r)
	}
	if len(fromLines) != 3 || fromLines[0].Event.ID != recs[0].Event.ID || !reflect.DeepEqual(fromLines[1].Matches, recs[1].Matches) {
		t.Errorf("JSON lines %+v do not match records %+v", fromLines, recs)
	}
}

// apiError asserts that err is an EventBridge API error with this code and
// HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("err = %v, want API error %s", err, code)
	}
	var se interface{ HTTPStatusCode() int }
	if !errors.As(err, &se) || se.HTTPStatusCode() != status {
		t.Errorf("err = %v, want HTTP %d", err, status)
	}
}

func TestPutEventsRequestValidation(t *testing.T) {
	b, c := testBus(t, nil, Options{})
	insert := readSeed(t, "event-insert.json")
	ctx := context.Background()
	many := make([]types.PutEventsRequestEntry, 11)
	for i := range many {
		many[i] = insert.entry("walbridge")
	}
	huge := insert.entry("walbridge")
	huge.Detail = aws.String(`{"blob":"` + strings.Repeat("x", 1<<20) + `"}`)
	noSource := insert.entry("walbridge")
	noSource.Source = nil
	badBus := insert.entry("no spaces allowed")

	cases := []struct {
		name    string
		entries []types.PutEventsRequestEntry
		msg     string
	}{
		{"11 entries", many, "Member must have length less than or equal to 10"},
		{"over 1 MiB", []types.PutEventsRequestEntry{huge}, "Total size of the entries in the request is over the limit"},
		{"no entry complete", []types.PutEventsRequestEntry{noSource}, "No entry in the request has Source, DetailType and Detail"},
		{"bad bus name", []types.PutEventsRequestEntry{badBus}, "entries.1.member.eventBusName"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: tc.entries})
			wantAPIError(t, err, "ValidationException", http.StatusBadRequest)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want it to say %q", err, tc.msg)
			}
		})
	}
	if n := len(b.Records()); n != 0 {
		t.Errorf("%d events accepted from failed requests, want 0", n)
	}
}

func TestPutEventsEntryErrors(t *testing.T) {
	b, c := testBus(t, nil, Options{})
	insert := readSeed(t, "event-insert.json")
	with := func(f func(*types.PutEventsRequestEntry)) types.PutEventsRequestEntry {
		e := insert.entry("walbridge")
		f(&e)
		return e
	}
	entries := []types.PutEventsRequestEntry{
		insert.entry("walbridge"),
		with(func(e *types.PutEventsRequestEntry) { e.Source = nil }),
		with(func(e *types.PutEventsRequestEntry) { e.Detail = aws.String(`["an", "array"]`) }),
		with(func(e *types.PutEventsRequestEntry) { e.Detail = aws.String(`"a string"`) }),
		with(func(e *types.PutEventsRequestEntry) { e.Detail = aws.String(`{"unclosed": 1`) }),
		with(func(e *types.PutEventsRequestEntry) { e.Detail = aws.String(`{"big": 9223372036854775808}`) }),
		with(func(e *types.PutEventsRequestEntry) { e.DetailType = nil }),
		with(func(e *types.PutEventsRequestEntry) { e.Detail = nil }),
		with(func(e *types.PutEventsRequestEntry) { e.Source = aws.String("aws.rds") }),
		with(func(e *types.PutEventsRequestEntry) { e.DetailType = aws.String(strings.Repeat("é", 129)) }),
	}
	want := []string{
		"",
		"InvalidArgument: Parameter Source is not valid. Reason: Source is a required argument.",
		"MalformedDetail",
		"MalformedDetail",
		"MalformedDetail",
		"MalformedDetail",
		"InvalidArgument: Parameter DetailType is not valid. Reason: DetailType is a required argument.",
		"InvalidArgument: Parameter Detail is not valid. Reason: Detail is a required argument.",
		"NotAuthorizedForSourceException",
		"InvalidArgument: Parameter DetailType is not valid. Reason: DetailType is longer than 128 characters.",
	}
	res := putEvents(t, c, entries...)
	if res.FailedEntryCount != int32(len(want)-1) || len(res.Entries) != len(want) {
		t.Fatalf("FailedEntryCount %d with %d entries, want %d with %d", res.FailedEntryCount, len(res.Entries), len(want)-1, len(want))
	}
	for i, w := range want {
		e := res.Entries[i]
		got := aws.ToString(e.ErrorCode)
		if aws.ToString(e.ErrorMessage) != "" {
			got += ": " + aws.ToString(e.ErrorMessage)
		}
		if w == "" {
			if got != "" || e.EventId == nil {
				t.Errorf("entry %d: %q, want an EventId", i, got)
			}
			continue
		}
		if e.EventId != nil || !strings.HasPrefix(got, w) {
			t.Errorf("entry %d: EventId %v, error %q; want error %q", i, e.EventId, got, w)
		}
	}
	if n := len(b.Records()); n != 1 {
		t.Errorf("%d events accepted, want 1", n)
	}
}

// TestEntrySizeLimit checks the documented calculation at the limit: the
// UTF-8 bytes of Source, DetailType, Detail and Resources, plus 14 for Time.
func TestEntrySizeLimit(t *testing.T) {
	e := types.PutEventsRequestEntry{
		Source:     aws.String("src"),         // 3
		DetailType: aws.String("dt"),          // 2
		Detail:     aws.String(`{"k":"é"}`),   // 10
		Resources:  []string{"r1", "r2"},      // 4
		Time:       aws.Time(time.Unix(0, 0)), // 14
	}
	const size = 3 + 2 + 10 + 4 + 14
	for limit, ok := range map[int]bool{size: true, size - 1: false} {
		_, c := testBus(t, nil, Options{MaxRequestBytes: limit})
		_, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{e}})
		if ok && err != nil {
			t.Errorf("limit %d: %v, want accepted", limit, err)
		}
		if !ok {
			wantAPIError(t, err, "ValidationException", http.StatusBadRequest)
		}
	}
}

func TestOtherOperations(t *testing.T) {
	_, c := testBus(t, loadRules(t, "testdata/infra"), Options{})
	ctx := context.Background()

	bus, err := c.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String("walbridge")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(bus.Arn) != "arn:aws:events:us-east-1:000000000000:event-bus/walbridge" {
		t.Errorf("DescribeEventBus Arn = %q", aws.ToString(bus.Arn))
	}

	rules, err := c.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String("walbridge"), NamePrefix: aws.String("Users")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.Rules) != 1 || aws.ToString(rules.Rules[0].Name) != "UsersInsertRule" ||
		aws.ToString(rules.Rules[0].EventPattern) != `{"detail-type":["DatabaseEvent"],"resources":["monolith_database"],"detail":{"schema":["public"],"table":["users"],"operation":["insert"]}}` {
		t.Errorf("ListRules = %+v", rules.Rules)
	}

	_, err = c.ListEventBuses(ctx, &eventbridge.ListEventBusesInput{})
	wantAPIError(t, err, "UnknownOperationException", http.StatusBadRequest)
}

// hookRule is a dev rule, loaded from a file, sending inserts on the
// walbridge bus to url.
func hookRule(t *testing.T, url string) []Rule {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir+"/"+DevRulesDir+"/hook.json", fmt.Sprintf(`{
		"Name": "InsertHook",
		"EventBusName": "walbridge",
		"EventPattern": {"detail": {"operation": ["insert"]}},
		"Targets": [{"Id": "hook", "Url": %q}]
	}`, url))
	return loadRules(t, dir)
}

// waitDeliveries waits until the bus has finished n deliveries.
func waitDeliveries(t *testing.T, b *Bus, n int) []Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d := b.Deliveries(); len(d) >= n {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries finished after 10s, want %d", len(b.Deliveries()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var fastRetry = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func TestHTTPTargetRetriesThenDelivers(t *testing.T) {
	var mu sync.Mutex
	var calls int
	var received [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		received = append(received, body)
	}))
	defer hook.Close()

	var out syncbuf.Buffer
	b, c := testBus(t, hookRule(t, hook.URL+"/hook"), Options{Out: &out, Retry: fastRetry})
	insert := readSeed(t, "event-insert.json")
	res := putEvents(t, c, insert.entry("walbridge"), readSeed(t, "event-update.json").entry("walbridge"))

	d := waitDeliveries(t, b, 1)
	want := Delivery{EventID: aws.ToString(res.Entries[0].EventId), Rule: "InsertHook", Target: "hook", URL: hook.URL + "/hook", Attempts: 3, Delivered: true}
	if len(d) != 1 || d[0] != want {
		t.Fatalf("deliveries = %+v, want [%+v]", d, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || len(received) != 1 {
		t.Fatalf("hook called %d times, accepted %d events; want 3 calls, 1 event", calls, len(received))
	}
	if rec := b.Records()[0]; !bytes.Equal(received[0], marshal(rec.Event, "")) {
		t.Errorf("hook received %s, want %s", received[0], marshal(rec.Event, ""))
	}
	for _, line := range []string{"attempt 1 failed: HTTP 500 Internal Server Error; retrying in", "attempt 2 failed", "delivered on attempt 3"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, out.String())
		}
	}
}

func TestHTTPTargetGivesUp(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	unreachable := gone.URL + "/hook"
	gone.Close()

	var out syncbuf.Buffer
	b, c := testBus(t, hookRule(t, unreachable), Options{Out: &out, Retry: RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}})
	res := putEvents(t, c, readSeed(t, "event-insert.json").entry("walbridge"))

	d := waitDeliveries(t, b, 1)
	if len(d) != 1 || d[0].Delivered || d[0].Attempts != 3 || d[0].EventID != aws.ToString(res.Entries[0].EventId) ||
		!strings.Contains(d[0].Err, "connection refused") || !strings.Contains(d[0].Err, "gave up after 3 attempts") {
		t.Fatalf("deliveries = %+v, want one given up after 3 attempts", d)
	}
	if !strings.Contains(out.String(), "NOT DELIVERED after 3 attempts") {
		t.Errorf("log lacks the failed delivery:\n%s", out.String())
	}
}

func TestHTTPTargetStatuses(t *testing.T) {
	cases := []struct {
		status   int
		attempts int
		err      string
	}{
		{http.StatusBadRequest, 1, "HTTP 400 Bad Request (not retried)"},
		{http.StatusNotFound, 1, "HTTP 404 Not Found (not retried)"},
		{http.StatusTooManyRequests, 2, "HTTP 429 Too Many Requests; gave up after 2 attempts"},
		{http.StatusServiceUnavailable, 2, "HTTP 503 Service Unavailable; gave up after 2 attempts"},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
			}))
			defer hook.Close()
			b, c := testBus(t, hookRule(t, hook.URL), Options{Retry: RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}})
			putEvents(t, c, readSeed(t, "event-insert.json").entry("walbridge"))
			d := waitDeliveries(t, b, 1)
			if d[0].Delivered || d[0].Attempts != tc.attempts || d[0].Err != tc.err {
				t.Errorf("delivery = %+v, want %d attempts, error %q", d[0], tc.attempts, tc.err)
			}
		})
	}
}

func TestHTTPTargetMaxAge(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer hook.Close()
	policy := RetryPolicy{MaxAttempts: 100, MaxAge: 50 * time.Millisecond, BaseDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	b, c := testBus(t, hookRule(t, hook.URL), Options{Retry: policy})
	putEvents(t, c, readSeed(t, "event-insert.json").entry("walbridge"))
	d := waitDeliveries(t, b, 1)
	if d[0].Delivered || d[0].Attempts >= 100 || !strings.Contains(d[0].Err, "gave up: the event would be older than 50ms") {
		t.Errorf("delivery = %+v, want it given up by age", d[0])
	}
}

// TestPutEventsDoesNotWaitForTargets: a stuck target neither slows
// PutEvents nor keeps Close from stopping; what it held is abandoned.
func TestPutEventsDoesNotWaitForTargets(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hook.Close()
	defer close(release)

	b := New(hookRule(t, hook.URL), Options{QueueSize: 2})
	srv := httptest.NewServer(b)
	defer srv.Close()
	c := newClient(srv.URL, 0)
	insert := readSeed(t, "event-insert.json")

	start := time.Now()
	for range 4 { // one in flight, two queued, one dropped
		putEvents(t, c, insert.entry("walbridge"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("PutEvents took %v with a stuck target", d)
	}

	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a stuck target")
	}
	var full, closed int
	for _, d := range b.Deliveries() {
		switch {
		case d.Delivered:
			t.Errorf("delivered %+v to a stuck target", d)
		case strings.HasPrefix(d.Err, "queue full"):
			full++
		case d.Err == "bus closed before delivery":
			closed++
		}
	}
	if full < 1 || full+closed != 4 {
		t.Errorf("deliveries %+v: want every event abandoned, at least one for a full queue", b.Deliveries())
	}
	// After Close, accepted events are still logged but not sent.
	putEvents(t, c, insert.entry("walbridge"))
	if d := b.Deliveries(); len(d) != 5 || d[4].Err != "bus closed before delivery" {
		t.Errorf("after Close: deliveries %+v", d)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNotJSON11(t *testing.T) {
	b := New(nil, Options{})
	defer b.Close()
	srv := httptest.NewServer(b)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"__type":"SerializationException"`) {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestMaxRecords(t *testing.T) {
	b, c := testBus(t, nil, Options{MaxRecords: 2})
	insert := readSeed(t, "event-insert.json")
	var ids []string
	for range 3 {
		res := putEvents(t, c, insert.entry(""))
		ids = append(ids, aws.ToString(res.Entries[0].EventId))
	}
	recs := b.Records()
	if len(recs) != 2 || recs[0].Event.ID != ids[1] || recs[1].Event.ID != ids[2] {
		t.Errorf("records %+v, want the last two of %v", recs, ids)
	}
}

func TestCompactLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		detail  string
		matches []Match
		want    string
		noOld   bool
	}{
		{"insert", `{"schema":"public","table":"users","operation":"insert","newValues":{"id":{"type":"integer","value":7},"email":{"type":"string","value":"a@b"}},"changedValues":["id","email"]}`,
			[]Match{{Rule: "UsersInsertRule", File: "infra/template.yaml"}, {Rule: "Audit"}}, "public.users insert id=7 → UsersInsertRule (infra/template.yaml), Audit", false},
		{"update without old values", `{"schema":"public","table":"users","operation":"update","newValues":{"id":{"type":"integer","value":7}},"changedValues":[]}`,
			nil, "public.users update id=7 changed: - → no rule matched", true},
		{"update with old values", `{"schema":"public","table":"users","operation":"update","newValues":{"id":{"type":"integer","value":7}},"oldValues":{"id":{"type":"integer","value":7}},"changedValues":["email"]}`,
			nil, "public.users update id=7 changed: email → no rule matched", false},
		{"delete", `{"schema":"s","table":"t","operation":"delete","oldValues":{"k":{"type":"string","value":"x"}},"changedValues":["k"]}`,
			nil, `s.t delete k="x" → no rule matched`, false},
		{"read", `{"schema":"s","table":"t","operation":"read","newValues":{"k":{"type":"integer","value":1}},"backfill":"4"}`,
			nil, "s.t read k=1 (backfill 4) → no rule matched", false},
		{"other event", `{"hello":"world"}`, nil, "app Thing → no rule matched", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := Record{Event: Event{Source: "app", DetailType: "Thing", Detail: json.RawMessage(tc.detail)}, Matches: tc.matches}
			line, _, noOld := compactLine(rec)
			if line != tc.want || noOld != tc.noOld {
				t.Fatalf("got %q (noOld %v), want %q (%v)", line, noOld, tc.want, tc.noOld)
			}
		})
	}
}

// TestResolveReferences: a dev rule target with "ResolveReferences": true
// gets the event with its claim-check references replaced (by
// Options.Resolve), resolved once though its first attempt fails; one
// without gets the event as published.
func TestResolveReferences(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct{ Detail json.RawMessage }
		json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		if _, again := got[r.URL.Path+" failed"]; r.URL.Path == "/resolved" && !again {
			got[r.URL.Path+" failed"] = string(ev.Detail)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got[r.URL.Path] = string(ev.Detail)
	}))
	defer hook.Close()
	dir := t.TempDir()
	writeFile(t, dir+"/"+DevRulesDir+"/hook.json", fmt.Sprintf(`{
		"Name": "Refs", "EventBusName": "walbridge", "EventPattern": {"detail": {"operation": ["insert"]}},
		"Targets": [{"Id": "resolved", "Url": %q, "ResolveReferences": true}, {"Id": "raw", "Url": %q}]
	}`, hook.URL+"/resolved", hook.URL+"/raw"))
	var resolves atomic.Int32
	resolve := func(_ context.Context, detail []byte) ([]byte, error) {
		resolves.Add(1)
		return bytes.ReplaceAll(detail, []byte(`"s3":{"bucket":"b","key":"k"}`), []byte(`"value":"resolved"`)), nil
	}
	b, c := testBus(t, loadRules(t, dir), Options{Retry: fastRetry, Resolve: resolve})
	detail := `{"operation":"insert","newValues":{"body":{"type":"string","s3":{"bucket":"b","key":"k"}}}}`
	putEvents(t, c, types.PutEventsRequestEntry{Source: aws.String("s"), DetailType: aws.String("DatabaseEvent"), Detail: aws.String(detail), EventBusName: aws.String("walbridge")})
	waitDeliveries(t, b, 2)
	mu.Lock()
	defer mu.Unlock()
	if got["/raw"] != detail {
		t.Errorf("raw target got %s, want %s", got["/raw"], detail)
	}
	if want := `{"operation":"insert","newValues":{"body":{"type":"string","value":"resolved"}}}`; got["/resolved"] != want || got["/resolved failed"] != want {
		t.Errorf("resolving target got %s, and %s on its failed attempt, want %s", got["/resolved"], got["/resolved failed"], want)
	}
	if n := resolves.Load(); n != 1 {
		t.Errorf("the event was resolved %d times, want once", n)
	}
}
