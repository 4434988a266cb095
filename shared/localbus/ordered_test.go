package localbus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/shared/syncbuf"
)

const orderedBus = "arn:aws:events:us-east-1:000000000000:event-busv2/walbridge/abcdefghijklmnopqrstuvwxy"

// orderedTemplate has a classic rule and an ordered-bus subscriber, both for
// users inserts; the subscriber also filters on the event group.
const orderedTemplate = `
Resources:
  Bus:
    Type: AWS::EventsV2::EventBus
    Properties:
      Name: walbridge
  ClassicRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: walbridge
      EventPattern:
        detail:
          table: [users]
      Targets:
        - Id: queue
          Arn: arn:aws:sqs:us-east-1:000000000000:classic
  UsersSubscriber:
    Type: AWS::EventsV2::Subscriber
    Properties:
      Name: users
      EventBusArn: !Ref Bus
      Type: FIFO
      FilterConfiguration:
        Filters:
          - Scope: DATA
            Pattern: '{"detail":{"table":["users"]}}'
          - Scope: SYSTEM_METADATA
            Pattern: '{"EventGroupId":[{"prefix":"public.users/"}]}'
      InvokeConfiguration:
        TargetArn: !GetAtt Queue.Arn
        RoleArn: arn:aws:iam::000000000000:role/deliver
  Queue:
    Type: AWS::SQS::Queue
`

func orderedClient(t *testing.T, url string) *orderedbus.Client {
	t.Helper()
	c, err := orderedbus.New(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}, orderedBus)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func userEntry(id, version int) orderedbus.Entry {
	return orderedbus.Entry{Source: "walbridge.database", DetailType: "DatabaseEvent",
		Detail:       fmt.Sprintf(`{"schema":"public","table":"users","operation":"update","version":%d}`, version),
		EventGroupID: fmt.Sprintf("public.users/%d", id), DeduplicationID: fmt.Sprintf("0/%X:%d", 0x100+version, id)}
}

// TestOrderedBus publishes through fanout's ordered-bus client: the local
// bus answers each entry PUBLISHED or, for a DeduplicationId its group
// already had, DEDUPLICATED without delivering it again; only the
// template's subscriber (not its classic rule) and the dev rule see the
// events, the dev rule's target in publish order.
func TestOrderedBus(t *testing.T) {
	t.Setenv(orderedbus.EndpointEnv, "")
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct{ Detail json.RawMessage }
		json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, string(ev.Detail))
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	writeFile(t, dir+"/template.yaml", orderedTemplate)
	writeFile(t, dir+"/"+DevRulesDir+"/hook.json", fmt.Sprintf(`{"Name": "Hook", "EventBusName": "walbridge",
		"EventPattern": {"detail": {"table": ["users"]}}, "Targets": [{"Id": "hook", "Url": %q}]}`, hook.URL))
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 3 || len(rs.Skipped) != 0 {
		var report bytes.Buffer
		rs.Report(&report)
		t.Fatalf("loaded %d rules:\n%s", len(rs.Rules), report.String())
	}
	var out syncbuf.Buffer
	b := New(rs.Rules, Options{Out: &out, Compact: true, Retry: fastRetry})
	defer b.Close()
	srv := httptest.NewServer(b)
	defer srv.Close()
	c := orderedClient(t, srv.URL)
	ctx := context.Background()

	first := []orderedbus.Entry{userEntry(1, 1), userEntry(2, 1), userEntry(1, 2)}
	res, err := c.PutEvents(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Entries {
		if r.SuccessCode != orderedbus.Published || r.EventID == "" {
			t.Errorf("entry %d: %+v, want PUBLISHED", i, r)
		}
	}
	// A resend of the first two (a retry after a lost answer) and a new one.
	res, err = c.PutEvents(ctx, []orderedbus.Entry{userEntry(1, 1), userEntry(2, 1), userEntry(2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if codes := []string{res.Entries[0].SuccessCode, res.Entries[1].SuccessCode, res.Entries[2].SuccessCode}; codes[0] != orderedbus.Deduplicated ||
		codes[1] != orderedbus.Deduplicated || codes[2] != orderedbus.Published {
		t.Errorf("second request answered %v, want DEDUPLICATED, DEDUPLICATED, PUBLISHED", codes)
	}
	// The same DeduplicationId in another group is another event.
	other := userEntry(3, 1)
	other.DeduplicationID = userEntry(1, 1).DeduplicationID
	if res, err = c.PutEvents(ctx, []orderedbus.Entry{other}); err != nil || res.Entries[0].SuccessCode != orderedbus.Published {
		t.Errorf("same id, other group: %+v %v", res, err)
	}
	if n := b.Deduplicated(); n != 2 {
		t.Errorf("Deduplicated() = %d, want 2", n)
	}

	recs := b.Records()
	if len(recs) != 5 {
		t.Fatalf("%d events accepted, want 5", len(recs))
	}
	for _, rec := range recs {
		names := []string{}
		for _, m := range rec.Matches {
			names = append(names, m.Rule)
		}
		if !rec.Ordered || rec.Bus != "walbridge" || strings.Join(names, ",") != "UsersSubscriber,Hook" {
			t.Errorf("event in group %s on bus %s (ordered %v) matched %v, want the subscriber and the dev rule", rec.Group, rec.Bus, rec.Ordered, names)
		}
	}
	waitDeliveries(t, b, 5)
	mu.Lock()
	defer mu.Unlock()
	var want []string
	for _, e := range append(first, userEntry(2, 2), other) {
		want = append(want, e.Detail)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the dev target received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out.String(), "deduplicated: "+userEntry(1, 1).DeduplicationID+" in group public.users/1") {
		t.Errorf("the log does not show the repeat:\n%s", out.String())
	}
}

// TestOrderedBusChecks: the subscriber's SYSTEM_METADATA filter applies, a
// classic PutEvents never reaches a subscriber, and malformed requests get
// the service's errors.
func TestOrderedBusChecks(t *testing.T) {
	t.Setenv(orderedbus.EndpointEnv, "")
	dir := t.TempDir()
	writeFile(t, dir+"/template.yaml", orderedTemplate)
	b, classic := testBus(t, loadRules(t, dir), Options{})
	srv := httptest.NewServer(b)
	defer srv.Close()
	c := orderedClient(t, srv.URL)
	ctx := context.Background()

	e := userEntry(1, 1)
	e.EventGroupID = "public.accounts/1" // outside the subscriber's groups
	if _, err := c.PutEvents(ctx, []orderedbus.Entry{e}); err != nil {
		t.Fatal(err)
	}
	s := readSeed(t, "event-insert.json")
	putEvents(t, classic, s.entry("walbridge"))
	recs := b.Records()
	if len(recs) != 2 || len(recs[0].Matches) != 0 || len(recs[1].Matches) != 1 || recs[1].Matches[0].Rule != "ClassicRule" {
		t.Fatalf("records %+v: want the ordered event unmatched and the classic one matched by ClassicRule only", recs)
	}

	for _, tc := range []struct {
		name, contentType string
		body              []byte
		code              string
	}{
		{"not CBOR", "application/cbor", []byte{0xff, 0x00}, "SerializationException"},
		{"JSON", "application/json", []byte(`{}`), "SerializationException"},
	} {
		resp, err := http.Post(srv.URL+"/service/AWSEventsV2/operation/PutEvents", tc.contentType, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !bytes.Contains(body, []byte(tc.code)) {
			t.Errorf("%s: %d %q, want 400 %s", tc.name, resp.StatusCode, body, tc.code)
		}
	}
	// Over 100 entries: the client refuses them itself; the bus would too.
	many := make([]orderedbus.Entry, 101)
	for i := range many {
		many[i] = userEntry(i, 1)
	}
	if _, err := c.PutEvents(ctx, many); err == nil {
		t.Error("101 entries accepted")
	}
	bad := userEntry(1, 9)
	bad.Detail = "[1]"
	res, err := c.PutEvents(ctx, []orderedbus.Entry{bad})
	if err != nil || res.FailedEntryCount != 1 || res.Entries[0].ErrorCode != "MalformedDetail" {
		t.Errorf("a detail that is not an object: %+v %v", res, err)
	}
}
