package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/localbus"
)

// TestStreamAndPlayground: the stream opens with a snapshot and follows
// with each event and health reading; the playground gives rulecheck's
// problems and the events a pattern matches.
func TestStreamAndPlayground(t *testing.T) {
	bus := localbus.New(nil, localbus.Options{})
	defer bus.Close()
	busSrv := httptest.NewServer(bus)
	defer busSrv.Close()
	c := New(Options{Bus: bus, Interval: 20 * time.Millisecond, Health: func(context.Context) Health {
		retained := int64(4096)
		return Health{WALRetainedBytes: &retained}
	}})
	defer c.Close()
	srv := httptest.NewServer(c)
	defer srv.Close()

	put := func(op string) {
		t.Helper()
		detail := `{"timestamp":"2026-12-06T12:00:00.000001+00:00","schema":"public","table":"users","operation":"` + op + `","newValues":{"id":{"type":"integer","value":1}}}`
		_, err := eventbridgetest.Client(t, busSrv.URL).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
			Source: aws.String("walbridge.database"), DetailType: aws.String("DatabaseEvent"), Detail: aws.String(detail)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("insert")

	resp, err := http.Get(srv.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	frames := bufio.NewScanner(resp.Body)
	frames.Buffer(nil, 1<<20)
	next := func(name string) string {
		t.Helper()
		for frames.Scan() {
			if frames.Text() == "event: "+name && frames.Scan() {
				return strings.TrimPrefix(frames.Text(), "data: ")
			}
		}
		t.Fatalf("the stream ended before a %s frame: %v", name, frames.Err())
		return ""
	}
	var snap struct {
		Items []item `json:"items"`
	}
	if err := json.Unmarshal([]byte(next("snapshot")), &snap); err != nil || len(snap.Items) != 1 || snap.Items[0].LagMs == nil {
		t.Fatalf("snapshot %+v (%v), want the insert with its lag", snap, err)
	}
	put("update")
	var rec item
	if err := json.Unmarshal([]byte(next("record")), &rec); err != nil || rec.Seq != 2 || !strings.Contains(string(rec.Event), `"operation":"update"`) {
		t.Fatalf("record frame %+v (%v), want the update as event 2", rec, err)
	}
	var h Health
	if err := json.Unmarshal([]byte(next("health")), &h); err != nil || h.Events != 2 || h.Tables["public.users"] != 2 || h.WALRetainedBytes == nil {
		t.Fatalf("health %+v (%v), want 2 events of public.users and the WAL reading", h, err)
	}

	for _, tc := range []struct {
		pattern, problem string
		valid            bool
		matches          []int
	}{
		{`{"detail":{"operate":["insert"]}}`, "did you mean detail.operation?", true, []int{}},
		{`{"detail":{"operation":["insert"]}}`, "", true, []int{1}},
		{`{"detail":{"operation":"insert"}}`, "array", false, []int{}},
	} {
		resp, err := http.Post(srv.URL+"/api/pattern", "application/json", strings.NewReader(tc.pattern))
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Problems []struct{ Path, Msg string }
			Valid    bool  `json:"valid"`
			Matches  []int `json:"matches"`
		}
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		got, _ := json.Marshal(res.Problems)
		if res.Valid != tc.valid || !strings.Contains(string(got), tc.problem) || (tc.problem == "" && len(res.Problems) > 0) || !slices.Equal(res.Matches, tc.matches) {
			t.Errorf("%s: %+v, want valid %v, a problem with %q, matches %v", tc.pattern, res, tc.valid, tc.problem, tc.matches)
		}
	}
}
