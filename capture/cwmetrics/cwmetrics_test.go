package cwmetrics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/metrics"
)

// recorder is an HTTP endpoint for the real CloudWatch client: it keeps the
// request bodies (whatever protocol the SDK speaks) and answers success.
type recorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, req.Header.Get("Content-Type")+" "+req.Header.Get("X-Amz-Target")+" "+string(b))
	r.mu.Unlock()
	switch {
	case strings.Contains(req.Header.Get("Content-Type"), "json"):
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		json.NewEncoder(w).Encode(map[string]any{})
	case strings.Contains(req.Header.Get("Content-Type"), "cbor") || req.Header.Get("Smithy-Protocol") == "rpc-v2-cbor":
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("Content-Type", "application/cbor")
		w.Write([]byte{0xa0}) // empty CBOR map
	default:
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></PutMetricDataResponse>`)
	}
}

func TestPublish(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	client := cloudwatch.NewFromConfig(awstest.Config(t), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(srv.URL) })

	reg := metrics.New()
	reg.Gauge("walbridge_slot_wal_retained_bytes", "").With().Set(123456)
	now := time.Unix(1_800_000_000, 0)
	reg.Gauge("walbridge_confirmed_lsn_advanced_timestamp_seconds", "").With().Set(float64(now.Unix() - 90))
	h := reg.Histogram("walbridge_commit_to_ack_seconds", "", []float64{0.005, 0.05, 0.5})
	h.Observe(0.001)
	h.Observe(0.04)

	p := New(client, reg, "walbridge", zap.NewNop())
	p.now = func() time.Time { return now }
	if err := p.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background()); err != nil { // no new latency observations
		t.Fatal(err)
	}
	if len(rec.bodies) != 2 {
		t.Fatalf("%d requests", len(rec.bodies))
	}
	first, second := rec.bodies[0], rec.bodies[1]
	for _, want := range []string{"ReplicationSlotWALRetainedBytes", "ConfirmedLSNAdvancedSeconds", "CommitToAckLatencyMs", "walbridge", "Slot"} {
		if !strings.Contains(first, want) {
			t.Errorf("first request lacks %q: %s", want, first)
		}
	}
	if strings.Contains(second, "CommitToAckLatencyMs") {
		t.Errorf("latency published for a period without observations: %s", second)
	}
	if ms, ok := p.periodMaxLatencyMs(); ok {
		t.Errorf("period max %v after no observations", ms)
	}
	h.Observe(0.4)
	if ms, ok := p.periodMaxLatencyMs(); !ok || ms != 500 {
		t.Errorf("period max %v %v, want 500 ms (the bucket holding 0.4 s)", ms, ok)
	}
}

// TestPublishSetup: setup's outcome is one SetupRefused datum, 1 for a
// refusal and 0 otherwise, under the slot.
func TestPublishSetup(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	client := cloudwatch.NewFromConfig(awstest.Config(t), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	for _, refused := range []bool{true, false} {
		if err := PublishSetup(context.Background(), client, "walbridge", refused, time.Unix(1_800_000_000, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.bodies) != 2 {
		t.Fatalf("%d requests", len(rec.bodies))
	}
	for i, b := range rec.bodies {
		if !strings.Contains(b, "SetupRefused") || !strings.Contains(b, "Slot") || !strings.Contains(b, "walbridge") {
			t.Errorf("request %d: %s", i, b)
		}
	}
	if rec.bodies[0] == rec.bodies[1] {
		t.Error("a refusal and a success sent the same datum")
	}
}
