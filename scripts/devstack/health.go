package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walbridge/walbridge/capture/backfill"
	"github.com/walbridge/walbridge/scripts/devstack/console"
)

// healthReader reads what the console shows beside the bus: the slot and
// the backfills from the database (one connection, kept), and capture's
// Prometheus metrics.
type healthReader struct {
	dbURL, metricsURL string
	client            *http.Client
	mu                sync.Mutex
	conn              *pgx.Conn
}

func newHealthReader(dbURL, metricsAddr string) *healthReader {
	return &healthReader{dbURL: dbURL, metricsURL: "http://" + metricsAddr + "/metrics", client: &http.Client{Timeout: 2 * time.Second}}
}

// read fills a Health; what cannot be read is named in Problems.
func (r *healthReader) read(ctx context.Context) console.Health {
	var h console.Health
	if err := r.readDatabase(ctx, &h); err != nil {
		h.Problems = append(h.Problems, "database: "+err.Error())
	}
	if err := r.readMetrics(ctx, &h); err != nil {
		h.Problems = append(h.Problems, "capture metrics: "+err.Error())
	}
	return h
}

func (r *healthReader) readDatabase(ctx context.Context, h *console.Health) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil || r.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, r.dbURL)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		r.conn = conn
	}
	var retained *int64
	var confirmed *string
	err := r.conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = 'walbridge'`).Scan(&retained, &confirmed)
	switch {
	case err == pgx.ErrNoRows:
		h.Problems = append(h.Problems, "no replication slot walbridge yet")
	case err != nil:
		r.conn.Close(context.Background())
		return fmt.Errorf("read the slot: %w", err)
	default:
		h.WALRetainedBytes = retained
		if confirmed != nil {
			h.ConfirmedLSN = *confirmed
		}
	}
	bfs, err := backfill.List(ctx, r.conn, "walbridge")
	if err != nil {
		return fmt.Errorf("read backfills: %w", err)
	}
	now := time.Now()
	for _, b := range bfs {
		h.Backfills = append(h.Backfills, console.Backfill{ID: b.ID, Table: b.Name(), State: string(b.State),
			RowsDone: b.RowsDone, Estimate: b.Estimate, RowsPerSecond: b.Rate(now)})
	}
	return nil
}

// readMetrics takes the records written and the confirmed position's age
// from capture's /metrics.
func (r *healthReader) readMetrics(ctx context.Context, h *console.Health) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("capture is not serving them yet")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if f := fams["walbridge_kinesis_records_total"]; f != nil {
		var records float64
		for _, m := range f.GetMetric() {
			records += m.GetCounter().GetValue()
		}
		h.KinesisRecords = &records
	}
	if f := fams["walbridge_confirmed_lsn_advanced_timestamp_seconds"]; f != nil && len(f.GetMetric()) > 0 {
		if advanced := f.GetMetric()[0].GetGauge().GetValue(); advanced > 0 {
			age := time.Since(time.Unix(0, int64(advanced*1e9))).Seconds()
			h.ConfirmedAgeSeconds = &age
		}
	}
	return nil
}

func (r *healthReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close(context.Background())
	}
}
