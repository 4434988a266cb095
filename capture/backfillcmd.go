package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/backfill"
)

// tableList is a repeatable --table flag.
type tableList []string

func (t *tableList) String() string { return strings.Join(*t, ",") }
func (t *tableList) Set(v string) error {
	*t = append(*t, splitList(v)...)
	return nil
}

func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("backfill", &cfg, stderr, "database-url", "slot", "publication", "json", "policy")
	var tables tableList
	fs.Var(&tables, "table", "table to backfill, schema.table (repeatable, or comma-separated)")
	all := fs.Bool("all", false, "backfill every published table")
	where := fs.String("where", "", "SQL condition: backfill only the rows it holds for")
	chunkRows := fs.Int("chunk-rows", backfill.DefaultChunkRows, "rows per chunk query")
	maxRate := fs.Int("max-rows-per-second", 0, "rate limit per backfill (0: none)")
	wait := fs.Bool("wait", false, "wait until the backfills end, showing progress")
	cancel := fs.Int64("cancel", 0, "cancel the backfill with this id")
	list := fs.Bool("list", false, "list backfills")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: capture backfill --table schema.table [--table ...] | --all [--where SQL] [--chunk-rows N] [--max-rows-per-second N] [--wait]
       capture backfill --cancel ID
       capture backfill --list [--json]

Registers backfills that the running "capture run" carries out: every row of
the tables reaches the stream as a "read" change, merged with live changes.

`)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	modes := 0
	for _, on := range []bool{len(tables) > 0 || *all, *cancel != 0, *list} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return fmt.Errorf("%w: give --table (or --all), --cancel ID or --list", errUsage)
	}
	if *chunkRows <= 0 {
		return fmt.Errorf("%w: --chunk-rows must be positive", errUsage)
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	switch {
	case *list:
		bs, err := backfill.List(ctx, conn, cfg.Slot)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return writeJSON(stdout, backfillsJSON(bs, time.Now()))
		}
		printBackfills(stdout, bs, time.Now())
		return nil
	case *cancel != 0:
		b, err := backfill.Cancel(ctx, conn, *cancel)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cancelled backfill %d (%s) after %d rows\n", b.ID, b.Name(), b.RowsDone)
		return nil
	}
	pol, err := loadPolicy(cfg)
	if err != nil {
		return err
	}
	bs, err := backfill.Register(ctx, conn, backfill.Request{
		Slot: cfg.Slot, Publication: cfg.Publication, Tables: tables, All: *all, Where: *where,
		ChunkRows: *chunkRows, MaxRowsPerSecond: *maxRate,
		Skip: func(schema, table string) bool { _, skip := pol.Table(schema, table); return skip },
	})
	if err != nil {
		return err
	}
	for _, b := range bs {
		fmt.Fprintf(stdout, "registered backfill %d: %s (about %d rows)\n", b.ID, b.Name(), b.Estimate)
	}
	if !*wait {
		fmt.Fprintln(stdout, "capture run carries them out; follow with: capture backfill --list")
		return nil
	}
	return waitBackfills(ctx, conn, bs, stdout)
}

// waitBackfills follows the backfills until each has ended: at a terminal a
// progress bar per table redrawn in place, otherwise a line every few
// seconds. It fails if any ends other than done.
func waitBackfills(ctx context.Context, conn *pgx.Conn, bs []backfill.Backfill, stdout io.Writer) error {
	ids := make([]int64, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	tty := isTerminal(stdout)
	every := 5 * time.Second // a line this often without a terminal
	const poll = 250 * time.Millisecond
	drawn := 0
	lastLine := time.Time{}
	for {
		cur, err := backfill.Get(ctx, conn, ids)
		if err != nil {
			return err
		}
		now := time.Now()
		ended := 0
		for _, b := range cur {
			if !b.State.Active() {
				ended++
			}
		}
		if tty {
			if drawn > 0 {
				fmt.Fprintf(stdout, "\x1b[%dA", drawn)
			}
			for _, b := range cur {
				fmt.Fprintf(stdout, "\x1b[2K%s\n", progressLine(&b, now, true))
			}
			drawn = len(cur)
		} else if ended == len(cur) || now.Sub(lastLine) >= every {
			for _, b := range cur {
				fmt.Fprintln(stdout, progressLine(&b, now, false))
			}
			lastLine = now
		}
		if ended == len(cur) {
			var bad []string
			for _, b := range cur {
				if b.State != backfill.Done {
					msg := fmt.Sprintf("%d (%s) %s", b.ID, b.Name(), b.State)
					if b.Error != "" {
						msg += ": " + b.Error
					}
					bad = append(bad, msg)
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("backfills did not complete: %s", strings.Join(bad, "; "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // the backfills go on without us
		case <-time.After(poll):
		}
	}
}

// progressLine: table, state, rows, percent of the estimate, rate, ETA.
func progressLine(b *backfill.Backfill, now time.Time, bar bool) string {
	rate := b.Rate(now)
	pct := 0.0
	if b.Estimate > 0 {
		pct = min(100, 100*float64(b.RowsDone)/float64(b.Estimate))
	}
	if b.State == backfill.Done {
		pct = 100
	}
	eta := "-"
	if b.State.Active() && rate > 0 && b.Estimate > b.RowsDone {
		eta = (time.Duration(float64(b.Estimate-b.RowsDone)/rate) * time.Second).Round(time.Second).String()
	}
	s := fmt.Sprintf("%-30s %-9s %10d rows %5.1f%% %9.0f rows/s  ETA %s", b.Name(), b.State, b.RowsDone, pct, rate, eta)
	if bar {
		const width = 24
		n := int(pct / 100 * width)
		s = fmt.Sprintf("[%s%s] ", strings.Repeat("#", n), strings.Repeat(".", width-n)) + s
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// backfillJSON is a backfill as --list --json and status --json show it.
type backfillJSON struct {
	backfill.Backfill
	RowsPerSecond float64 `json:"rowsPerSecond"`
}

func backfillsJSON(bs []backfill.Backfill, now time.Time) []backfillJSON {
	out := make([]backfillJSON, len(bs))
	for i, b := range bs {
		out[i] = backfillJSON{Backfill: b, RowsPerSecond: b.Rate(now)}
	}
	return out
}

func printBackfills(w io.Writer, bs []backfill.Backfill, now time.Time) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no backfills")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTABLE\tSTATE\tROWS\tESTIMATE\tROWS/S\tSTARTED\tFINISHED")
	stamp := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.DateTime)
	}
	for _, b := range bs {
		state := string(b.State)
		if b.Error != "" {
			state += " (" + b.Error + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%.0f\t%s\t%s\n", b.ID, b.Name(), state, b.RowsDone, b.Estimate, b.Rate(now), stamp(b.StartedAt), stamp(b.FinishedAt))
	}
	tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
