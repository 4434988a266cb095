package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walbridge/walbridge/scripts/devstack/console"
	"github.com/walbridge/walbridge/shared/metrics"
)

// TestReadMetrics reads what capture's registry serves: the records of
// every label summed, the confirmed position's age from its timestamp.
func TestReadMetrics(t *testing.T) {
	reg := metrics.New()
	records := reg.Counter("walbridge_kinesis_records_total", "", "shard")
	records.With("a").Add(3)
	records.With(`b "quoted" {x y}`).Add(4)
	reg.Gauge("walbridge_confirmed_lsn_advanced_timestamp_seconds", "").With().Set(float64(time.Now().Add(-90 * time.Second).Unix()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reg.WriteText(w) }))
	defer srv.Close()
	r := newHealthReader("", strings.TrimPrefix(srv.URL, "http://"))
	var h console.Health
	if err := r.readMetrics(context.Background(), &h); err != nil {
		t.Fatal(err)
	}
	if h.KinesisRecords == nil || *h.KinesisRecords != 7 {
		t.Errorf("Kinesis records %v, want 7", h.KinesisRecords)
	}
	if h.ConfirmedAgeSeconds == nil || *h.ConfirmedAgeSeconds < 89 || *h.ConfirmedAgeSeconds > 120 {
		t.Errorf("confirmed age %v s, want about 90", h.ConfirmedAgeSeconds)
	}
}
