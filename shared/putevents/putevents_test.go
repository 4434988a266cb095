package putevents

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/walbridge/walbridge/shared/event"
)

func str(s string) *string { return &s }

func valid() Entry {
	return Entry{Source: str("walbridge.app"), DetailType: str("DatabaseEvent"), Detail: str(`{"table":"users"}`)}
}

func TestCheckRequest(t *testing.T) {
	many := make([]Entry, MaxEntries+1)
	for i := range many {
		many[i] = valid()
	}
	big := valid()
	big.Detail = str(`{"x":"` + strings.Repeat("a", 300) + `"}`)
	withTime := valid()
	withTime.Time = new(float64)
	tests := []struct {
		name    string
		entries []Entry
		max     int
		want    string // substring of the message; "" means accepted
	}{
		{"one valid entry", []Entry{valid()}, MaxRequestBytes, ""},
		{"ten entries", many[:MaxEntries], MaxRequestBytes, ""},
		{"no entries", nil, MaxRequestBytes, "greater than or equal to 1"},
		{"eleven entries", many, MaxRequestBytes, "less than or equal to 10"},
		{"bus name", []Entry{{Source: str("s"), DetailType: str("d"), Detail: str("{}"), EventBusName: str("bad name!")}}, MaxRequestBytes, "eventBusName"},
		{"bus ARN", []Entry{{Source: str("s"), DetailType: str("d"), Detail: str("{}"), EventBusName: str("arn:aws:events:eu-west-1:123456789012:event-bus/walbridge")}}, MaxRequestBytes, ""},
		{"over the size limit", []Entry{big}, 300, "over the limit"},
		{"exactly the size limit", []Entry{big}, EntrySize(big), ""},
		{"time counts 14 bytes", []Entry{withTime}, EntrySize(valid()) + 13, "over the limit"},
		{"no complete entry", []Entry{{Source: str("s"), DetailType: str("d")}, {Detail: str("{}")}}, MaxRequestBytes, "No entry in the request"},
		{"one complete entry is enough", []Entry{{Source: str("s")}, valid()}, MaxRequestBytes, ""},
	}
	for _, tc := range tests {
		err := CheckRequest(tc.entries, tc.max)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || err.Code != "ValidationException" || err.Status != 400 || !strings.Contains(err.Message, tc.want)):
			t.Errorf("%s: %v, want a ValidationException containing %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckEntry(t *testing.T) {
	with := func(f func(*Entry)) Entry { e := valid(); f(&e); return e }
	deep := strings.Repeat(`{"a":`, maxDetailDepth) + "1" + strings.Repeat("}", maxDetailDepth)
	tests := []struct {
		name string
		e    Entry
		code string
	}{
		{"valid", valid(), ""},
		{"no source", with(func(e *Entry) { e.Source = nil }), "InvalidArgument"},
		{"aws source", with(func(e *Entry) { e.Source = str("aws.s3") }), "NotAuthorizedForSourceException"},
		{"no detail type", with(func(e *Entry) { e.DetailType = str("") }), "InvalidArgument"},
		{"long detail type", with(func(e *Entry) { e.DetailType = str(strings.Repeat("é", maxDetailType+1)) }), "InvalidArgument"},
		{"128-character detail type", with(func(e *Entry) { e.DetailType = str(strings.Repeat("é", maxDetailType)) }), ""},
		{"no detail", with(func(e *Entry) { e.Detail = nil }), "InvalidArgument"},
		{"long resource", with(func(e *Entry) { e.Resources = []string{strings.Repeat("r", maxResource+1)} }), "InvalidArgument"},
		{"detail not an object", with(func(e *Entry) { e.Detail = str(`[1]`) }), "MalformedDetail"},
		{"detail not JSON", with(func(e *Entry) { e.Detail = str(`{"a":}`) }), "MalformedDetail"},
		{"detail with trailing data", with(func(e *Entry) { e.Detail = str(`{} {}`) }), "MalformedDetail"},
		{"detail cut short", with(func(e *Entry) { e.Detail = str(`{"a":[1`) }), "MalformedDetail"},
		{"integer beyond int64", with(func(e *Entry) { e.Detail = str(`{"n":9223372036854775808}`) }), "MalformedDetail"},
		{"int64 max", with(func(e *Entry) { e.Detail = str(`{"n":9223372036854775807}`) }), ""},
		{"double beyond range", with(func(e *Entry) { e.Detail = str(`{"n":1e999}`) }), "MalformedDetail"},
		{"nested as deep as processed", with(func(e *Entry) { e.Detail = str(deep) }), ""},
		{"nested deeper", with(func(e *Entry) { e.Detail = str(`{"b":` + deep + `}`) }), "MalformedDetail"},
	}
	for _, tc := range tests {
		if code, msg := CheckEntry(tc.e); code != tc.code || (code != "" && msg == "") {
			t.Errorf("%s: code %q (%s), want %q", tc.name, code, msg, tc.code)
		}
	}
}

// TestEntrySizeMatchesEvent keeps EntrySize in step with the size fanout
// sizes its events by.
func TestEntrySizeMatchesEvent(t *testing.T) {
	at := 1.5
	for _, e := range []Entry{valid(), {}, {Source: str("é"), DetailType: str("x"), Detail: str(`{"a":"漢"}`), Resources: []string{"r1", "arn:aws:rds:eu-west-1:1:db:x"}, Time: &at}} {
		ev := event.Event{Source: aws.ToString(e.Source), DetailType: aws.ToString(e.DetailType), Detail: []byte(aws.ToString(e.Detail)), Resources: e.Resources}
		if e.Time != nil {
			ev.Time = time.Unix(1, 0)
		}
		if got, want := EntrySize(e), ev.EntrySize(); got != want {
			t.Errorf("EntrySize(%+v) = %d, event.Event.EntrySize = %d", e, got, want)
		}
	}
}
