package orderedbus_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	smithycbor "github.com/aws/smithy-go/encoding/cbor"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/fanout/orderedbus/orderedbustest"
)

const bus = "arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func client(t *testing.T, url string) *orderedbus.Client {
	t.Helper()
	t.Setenv(orderedbus.EndpointEnv, url)
	c, err := orderedbus.New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}, bus)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entry(group, dedupe, detail string) orderedbus.Entry {
	return orderedbus.Entry{Source: "com.example.db", DetailType: "DatabaseEvent", Detail: detail, EventGroupID: group, DeduplicationID: dedupe}
}

// TestPutEventsShapeAndDedupe: what the client sends decodes, strictly and
// with an independent CBOR library, to the documented PutEventsRequest; the
// fake delivers per group in order and answers repeats inside the window
// with DEDUPLICATED, which counts as accepted.
func TestPutEventsShapeAndDedupe(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus, Now: clk.now})
	c := client(t, f.URL)
	ctx := context.Background()
	when := time.Date(2026, 12, 3, 11, 59, 58, 123_000_000, time.UTC)
	longKey := "public.orders/" + strings.Repeat("k", 200)
	first := []orderedbus.Entry{
		{Source: "com.example.db", DetailType: "DatabaseEvent", Detail: `{"n":1}`, Resources: []string{"arn:aws:rds:us-east-1:123456789012:db:app"},
			Time: when, EventGroupID: "public.users/1", DeduplicationID: "0/16B3748:1"},
		entry("public.users/1", "0/16B3748:2", `{"n":2}`),
		entry(orderedbus.GroupID(longKey), "0/16B3748:3", `{"n":3}`),
	}
	out, err := c.PutEvents(ctx, first)
	if err != nil {
		t.Fatalf("PutEvents: %v (fake: %s)", err, f.LastError())
	}
	if out.FailedEntryCount != 0 || len(out.Entries) != 3 {
		t.Fatalf("answer %+v", out)
	}
	for i, r := range out.Entries {
		if !r.OK() || r.SuccessCode != orderedbus.Published || r.EventID == "" {
			t.Fatalf("entry %d: %+v", i, r)
		}
	}
	got := f.Group("public.users/1")
	if len(got) != 2 || got[0].Detail != `{"n":1}` || got[1].Detail != `{"n":2}` || !got[0].Time.Equal(when) || got[0].DeduplicationID != "0/16B3748:1" {
		t.Fatalf("group public.users/1 received %+v", got)
	}
	if g := orderedbus.GroupID(longKey); len(g) > orderedbus.MaxIDBytes || len(f.Group(g)) != 1 || orderedbus.GroupID("public.users/1") != "public.users/1" {
		t.Fatalf("long key group %q", g)
	}

	// A crash-and-resend of the same events within the window.
	clk.add(4 * time.Minute)
	out, err = c.PutEvents(ctx, append(first[1:], entry("public.users/1", "0/16B3800:1", `{"n":4}`)))
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{out.Entries[0].SuccessCode, out.Entries[1].SuccessCode, out.Entries[2].SuccessCode}
	if codes[0] != orderedbus.Deduplicated || codes[1] != orderedbus.Deduplicated || codes[2] != orderedbus.Published || !out.Entries[0].OK() {
		t.Fatalf("resend answered %v", codes)
	}
	if st := f.Stats(); st.Published != 4 || st.Deduplicated != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Outside the window a repeat is delivered again: consumers still need
	// lsn and seq for replays.
	clk.add(2 * time.Minute)
	if out, err = c.PutEvents(ctx, first[1:2]); err != nil || out.Entries[0].SuccessCode != orderedbus.Published {
		t.Fatalf("repeat after the window: %+v, %v", out, err)
	}
}

func TestPutEventsErrors(t *testing.T) {
	t.Run("throttled request", func(t *testing.T) {
		f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus, ThrottleEvery: 1})
		_, err := client(t, f.URL).PutEvents(context.Background(), []orderedbus.Entry{entry("g", "d", "{}")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || ae.ErrorFault() != smithy.FaultClient {
			t.Fatalf("err = %v, want a ThrottlingException API error", err)
		}
	})
	t.Run("unknown bus", func(t *testing.T) {
		f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus + "x"})
		_, err := client(t, f.URL).PutEvents(context.Background(), []orderedbus.Entry{entry("g", "d", "{}")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidInputException" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("entries fail", func(t *testing.T) {
		f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus, FailRate: 1})
		out, err := client(t, f.URL).PutEvents(context.Background(), []orderedbus.Entry{entry("g", "d1", "{}"), entry("g", "d2", "{}")})
		if err != nil || out.FailedEntryCount != 2 || out.Entries[0].OK() || out.Entries[0].ErrorCode != "InternalFailure" || out.Entries[1].ErrorCode != "ThrottlingException" {
			t.Fatalf("%+v, %v", out, err)
		}
		if len(f.All()) != 0 {
			t.Fatal("failed entries delivered")
		}
	})
	many := make([]orderedbus.Entry, orderedbus.MaxEntries+1)
	for i := range many {
		many[i] = entry("g", "d", "{}")
	}
	for _, tc := range []struct {
		name    string
		entries []orderedbus.Entry
	}{
		{"no entries", nil},
		{"too many entries", many},
		{"no source", []orderedbus.Entry{{DetailType: "x"}}},
		{"group id too long", []orderedbus.Entry{entry(strings.Repeat("g", 129), "d", "{}")}},
		{"blank dedupe id", []orderedbus.Entry{entry("g", "  ", "{}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus})
			if _, err := client(t, f.URL).PutEvents(context.Background(), tc.entries); err == nil {
				t.Fatal("no error")
			}
			if st := f.Stats(); st.Requests != 0 {
				t.Fatalf("sent anyway: %+v", st)
			}
		})
	}
}

// TestFakeIsStrict: the fake refuses a body with a member the shape does
// not have, or a timestamp without its tag, so the shape test above can
// fail.
func TestFakeIsStrict(t *testing.T) {
	f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus})
	for name, body := range map[string]smithycbor.Map{
		"unknown member": {"EventBusArn": smithycbor.String(bus), "Entries": smithycbor.List{smithycbor.Map{
			"Source": smithycbor.String("s"), "DetailType": smithycbor.String("d"), "GroupId": smithycbor.String("g")}}},
		"untagged time": {"EventBusArn": smithycbor.String(bus), "Entries": smithycbor.List{smithycbor.Map{
			"Source": smithycbor.String("s"), "DetailType": smithycbor.String("d"), "Time": smithycbor.Float64(1.5)}}},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/service/AWSEventsV2/operation/PutEvents", bytes.NewReader(smithycbor.Encode(body)))
		req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		req.Header.Set("Content-Type", "application/cbor")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=A/20261203/us-east-1/events/aws4_request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(f.LastError(), "SerializationException") {
			t.Fatalf("%s: status %d, %q", name, resp.StatusCode, f.LastError())
		}
	}
}

func TestNew(t *testing.T) {
	creds := credentials.NewStaticCredentialsProvider("A", "B", "")
	t.Setenv(orderedbus.EndpointEnv, "")
	for _, tc := range []struct {
		name, bus string
		ok        bool
	}{
		{"v2 bus", bus, true},
		{"classic bus ARN", "arn:aws:events:us-east-1:123456789012:event-bus/cdc", false},
		{"bus name", "cdc", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := orderedbus.New(aws.Config{Region: "us-east-1", Credentials: creds}, tc.bus)
			if (err == nil) != tc.ok || orderedbus.IsBusARN(tc.bus) != tc.ok {
				t.Fatalf("New(%q) = %v", tc.bus, err)
			}
		})
	}
	if _, err := orderedbus.New(aws.Config{Region: "us-east-1"}, bus); err == nil {
		t.Fatal("no credentials accepted")
	}
}
