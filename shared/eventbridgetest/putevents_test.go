package eventbridgetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
)

func ebClientNoRetry(t *testing.T, url string) *eventbridge.Client {
	return Client(t, url, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
}

func ebEntry(detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{Source: aws.String("test.source"), DetailType: aws.String("T"), Detail: aws.String(detail), Resources: []string{"db"}}
}

func ebErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestPutEventsAcceptsInOrder(t *testing.T) {
	f := Start(t, Options{})
	c := ebClientNoRetry(t, f.URL)
	commit := time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC)
	first := ebEntry(`{"n":1}`)
	first.Time = aws.Time(commit)
	first.EventBusName = aws.String("arn:aws:events:us-east-1:123456789012:event-bus/orders")
	out, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{first, ebEntry(`{"n":2}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 0 || len(out.Entries) != 2 || aws.ToString(out.Entries[0].EventId) == "" {
		t.Fatalf("output %+v", out)
	}
	evs := f.Events()
	if len(evs) != 2 || evs[0].Detail != `{"n":1}` || evs[1].Detail != `{"n":2}` {
		t.Fatalf("events %+v", evs)
	}
	if !evs[0].Time.Equal(commit.Truncate(time.Millisecond)) || !evs[1].Time.IsZero() {
		t.Errorf("times %v, %v; want %v and zero", evs[0].Time, evs[1].Time, commit)
	}
	if evs[0].EventBusName != "arn:aws:events:us-east-1:123456789012:event-bus/orders" || evs[0].EventID != aws.ToString(out.Entries[0].EventId) {
		t.Errorf("event 0 %+v", evs[0])
	}
}

func TestPutEventsValidates(t *testing.T) {
	f := Start(t, Options{MaxRequestBytes: 1000})
	c := ebClientNoRetry(t, f.URL)
	ctx := context.Background()

	eleven := make([]types.PutEventsRequestEntry, 11)
	for i := range eleven {
		eleven[i] = ebEntry(`{}`)
	}
	big := ebEntry(`{"x":"` + strings.Repeat("a", 1000) + `"}`)
	badBus := ebEntry(`{}`)
	badBus.EventBusName = aws.String("no spaces allowed")
	for name, entries := range map[string][]types.PutEventsRequestEntry{"no entries": {}, "eleven entries": eleven, "too large": {big}, "bad bus name": {badBus}} {
		_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if code := ebErrorCode(err); code != "ValidationException" {
			t.Errorf("%s: error %v, want ValidationException", name, err)
		}
	}

	// The size limit is inclusive and counts Time as 14 bytes.
	exact := ebEntry(`{"x":"` + strings.Repeat("a", 1000-len("test.source")-len("T")-len("db")-len(`{"x":""}`)-14) + `"}`)
	exact.Time = aws.Time(time.Now())
	if _, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{exact}}); err != nil {
		t.Errorf("entry of exactly the limit: %v", err)
	}

	noSource := ebEntry(`{}`)
	noSource.Source = nil
	noDetail := ebEntry(`{}`)
	noDetail.Detail = nil
	bigInt := ebEntry(`{"n":12345678901234567890}`)
	awsSource := ebEntry(`{}`)
	awsSource.Source = aws.String("aws.s3")
	entries := []types.PutEventsRequestEntry{noSource, ebEntry(`{"ok":true}`), noDetail, ebEntry(`[1]`), ebEntry(`{"a":`), bigInt, awsSource}
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"InvalidArgument", "", "InvalidArgument", "MalformedDetail", "MalformedDetail", "MalformedDetail", "NotAuthorizedForSourceException"}
	if out.FailedEntryCount != 6 {
		t.Errorf("FailedEntryCount = %d, want 6", out.FailedEntryCount)
	}
	for i, w := range want {
		if got := aws.ToString(out.Entries[i].ErrorCode); got != w {
			t.Errorf("entry %d: ErrorCode %q (%s), want %q", i, got, aws.ToString(out.Entries[i].ErrorMessage), w)
		}
	}
	if s := f.Stats(); s.Rejected != 4 || s.InvalidEntries != 6 || s.Accepted != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestPutEventsFailures(t *testing.T) {
	f := Start(t, Options{ThrottleFraction: 0.2, InternalFailureFraction: 0.1, Seed: 7,
		Reject: func(ev Event) (string, string) {
			if strings.Contains(ev.Detail, "poison") {
				return "InvalidArgument", "poisoned"
			}
			return "", ""
		}})
	c := ebClientNoRetry(t, f.URL)
	codes := map[string]int{}
	for i := 0; i < 50; i++ {
		entries := make([]types.PutEventsRequestEntry, 10)
		for j := range entries {
			entries[j] = ebEntry(`{}`)
		}
		entries[9] = ebEntry(`{"poison":1}`)
		out, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, e := range out.Entries {
			codes[aws.ToString(e.ErrorCode)]++
			if e.ErrorCode != nil {
				failed++
			}
		}
		if int(out.FailedEntryCount) != failed || aws.ToString(out.Entries[9].ErrorCode) != "InvalidArgument" {
			t.Fatalf("FailedEntryCount %d for %d failed entries; entry 9: %v", out.FailedEntryCount, failed, out.Entries[9].ErrorCode)
		}
	}
	// 450 ordinary entries: about 90 throttled and 45 internal failures.
	if codes["ThrottlingException"] < 50 || codes["InternalFailure"] < 20 || codes["InvalidArgument"] != 50 || codes[""] < 250 {
		t.Errorf("error codes %v", codes)
	}
	if s := f.Stats(); s.Accepted != codes[""] || len(f.Events()) != s.Accepted {
		t.Errorf("stats %+v, %d events", s, len(f.Events()))
	}

	whole := Start(t, Options{ThrottleRequestFraction: 1})
	_, err := ebClientNoRetry(t, whole.URL).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{ebEntry(`{}`)}})
	if ebErrorCode(err) != "ThrottlingException" || len(whole.Events()) != 0 {
		t.Errorf("whole-request throttle: %v", err)
	}
	server := Start(t, Options{ServerErrorFraction: 1})
	_, err = ebClientNoRetry(t, server.URL).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{ebEntry(`{}`)}})
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
		t.Errorf("server error: %v", err)
	}
}
