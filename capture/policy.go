package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/capture/slot"
	"github.com/walbridge/walbridge/shared/policy"
)

// hashKeyEnv holds the key of hash rules. It is an environment variable, not
// a flag, so that it stays out of process listings; the EC2 start script
// fills it from WALBRIDGE_HASH_KEY_SECRET (a Secrets Manager ARN).
const hashKeyEnv = "WALBRIDGE_HASH_KEY"

// loadPolicy reads --policy (nil when none is configured).
func loadPolicy(cfg config) (*policy.Policy, error) {
	if cfg.Policy == "" {
		return nil, nil
	}
	return policy.Load(cfg.Policy)
}

// livePolicy loads the policy for run, keyed, and reloads it on SIGHUP until
// ctx ends: a file that fails to parse or validate is refused and the old
// policy stays. The returned stop waits for the reloader.
func livePolicy(ctx context.Context, cfg config, log *zap.Logger) (*policy.Live, func(), error) {
	p, err := loadPolicy(cfg)
	if err != nil {
		return nil, nil, err
	}
	live, err := policy.NewLive(p, []byte(os.Getenv(hashKeyEnv)))
	if err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", cfg.Policy, err)
	}
	if p == nil {
		return live, func() {}, nil
	}
	log.Info("column policy loaded", zap.String("file", cfg.Policy), zap.Int("column_rules", len(p.Columns)), zap.Int("table_rules", len(p.Tables)))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				next, err := policy.Load(cfg.Policy)
				if err == nil {
					err = live.Store(next, []byte(os.Getenv(hashKeyEnv)))
				}
				if err != nil {
					log.Error("column policy not reloaded; the previous one stays in force", zap.String("file", cfg.Policy), zap.Error(err))
					continue
				}
				log.Info("column policy reloaded; it applies from the next change", zap.String("file", cfg.Policy),
					zap.Int("column_rules", len(next.Columns)), zap.Int("table_rules", len(next.Tables)))
			}
		}
	}()
	return live, func() { signal.Stop(hup); <-done }, nil
}

// uncovered lists the tables' columns that look sensitive and that p does
// not cover.
func uncovered(ctx context.Context, conn *pgx.Conn, p *policy.Policy, tables []slot.TableInfo) ([]policy.Uncovered, error) {
	cols, err := slot.Columns(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	return p.Uncovered(cols), nil
}

// printUncovered writes the sensitive-column warning, with the rule that
// would cover each column.
func printUncovered(w io.Writer, list []policy.Uncovered) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwarning: these published columns look sensitive and no policy rule covers them (they reach Kinesis and EventBridge as they are):\n")
	for _, u := range list {
		fmt.Fprintf(w, "  %-40s looks like %q; to keep it out, add to the policy: %s\n", u.Name(), u.Word, u.Suggestion())
	}
}

// published is the publication's tables, for the warnings of run and status.
func published(ctx context.Context, conn *pgx.Conn, publication string) ([]slot.TableInfo, error) {
	all, err := slot.CapturedTables(ctx, conn, publication, nil, nil)
	if err != nil {
		return nil, err
	}
	var out []slot.TableInfo
	for _, t := range all {
		if t.Published {
			out = append(out, t)
		}
	}
	return out, nil
}

// warnUncovered logs, once at the start of run, the published columns that
// look sensitive and that no rule covers. It is advice: a database that
// can't be reached now is the replication session's to report.
func warnUncovered(ctx context.Context, cfg config, p *policy.Policy, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	tables, err := published(ctx, conn, cfg.Publication)
	if err != nil {
		return
	}
	list, err := uncovered(ctx, conn, p, tables)
	if err != nil {
		return
	}
	for _, u := range list {
		log.Warn("published column looks sensitive and no policy rule covers it", zap.String("column", u.Name()),
			zap.String("looks_like", u.Word), zap.String("policy_rule_to_cover_it", u.Suggestion()))
	}
}
