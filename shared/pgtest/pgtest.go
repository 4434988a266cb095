// Package pgtest starts the real PostgreSQL that walbridge's tests run
// against: a throwaway cluster with logical WAL on its own port and data
// directory (package pgcluster), run as the postgres OS user when the test
// runs as root. When it can't start, the test fails with the reason; nothing
// is ever skipped, because a missing dependency is an install bug.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/pgcluster"
)

// Cluster is a running throwaway cluster.
type Cluster struct {
	*pgcluster.Cluster
	root string
}

// Options tunes the cluster; the zero value is what most tests want.
type Options struct {
	// WALLevel defaults to "logical".
	WALLevel string
	// Settings are extra postgresql.conf settings (name → value).
	Settings map[string]string
}

// Start starts a cluster for the test and stops and removes it when
// the test ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	pg, err := New(opts)
	if err != nil {
		tb.Fatalf("start PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			tb.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return pg
}

// New initialises and starts a cluster in a fresh directory under
// /tmp (t.TempDir() sits below a directory the postgres user cannot enter).
// The caller must Stop it.
func New(opts Options) (*Cluster, error) {
	return start(opts, nil)
}

// baseSettings are every test cluster's, before Options.Settings.
func baseSettings(walLevel string) map[string]string {
	return map[string]string{
		"wal_level":             walLevel,
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"fsync":                 "off",
		"synchronous_commit":    "off",
		"full_page_writes":      "off",
		"listen_addresses":      "127.0.0.1",
		"max_connections":       "50",
		"shared_buffers":        "64MB",
		"wal_sender_timeout":    "60s",
	}
}

// start starts a cluster; prepare, when set, fills the data directory first
// (a standby's base backup) instead of initdb.
func start(opts Options, prepare func(dataDir string) error) (*Cluster, error) {
	if opts.WALLevel == "" {
		opts.WALLevel = "logical"
	}
	settings := baseSettings(opts.WALLevel)
	for k, v := range opts.Settings {
		settings[k] = v
	}
	root, err := os.MkdirTemp("", "walbridge-pg-")
	if err != nil {
		return nil, fmt.Errorf("make cluster dir: %w", err)
	}
	if prepare != nil {
		if err := prepare(filepath.Join(root, "data")); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
	}
	// A port found free can be taken before postgres binds it; try again.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(root)
			return nil, err
		}
		bin, err := testBinDir()
		if err != nil {
			os.RemoveAll(root)
			return nil, err
		}
		c, err := pgcluster.Start(context.Background(), pgcluster.Options{DataDir: filepath.Join(root, "data"), Port: port, Settings: settings, BinDir: bin})
		if err == nil {
			return &Cluster{Cluster: c, root: root}, nil
		}
		if attempt >= 3 {
			os.RemoveAll(root)
			return nil, err
		}
	}
}

// CreateDatabase creates a database and returns its URL.
func (pg *Cluster) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	pg.Exec(tb, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return pg.URL(name)
}

// Exec runs SQL statements in database db and fails the test on error.
func (pg *Cluster) Exec(tb testing.TB, db string, sql ...string) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL(db))
	if err != nil {
		tb.Fatalf("connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			tb.Fatalf("exec %q: %v", s, err)
		}
	}
}

// Stop shuts the server down and removes its directory.
func (pg *Cluster) Stop() error {
	err := pg.Cluster.Stop()
	if rmErr := os.RemoveAll(pg.root); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// BinDir finds the system's server binaries and tools such as
// pg_recvlogical (see pgcluster.BinDir); clusters may run another version
// (WALBRIDGE_TEST_PG).
func BinDir() (string, error) { return pgcluster.BinDir() }

// VersionEnv picks the PostgreSQL major version test clusters run
// (14-18); unset, pgcluster.DefaultVersion.
const VersionEnv = "WALBRIDGE_TEST_PG"

// Version is the major version test clusters run: WALBRIDGE_TEST_PG, else
// pgcluster.DefaultVersion.
func Version() (int, error) {
	v := os.Getenv(VersionEnv)
	if v == "" {
		return pgcluster.DefaultVersion, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a major version such as 17", VersionEnv, v)
	}
	return n, nil
}

func testBinDir() (string, error) {
	v, err := Version()
	if err != nil {
		return "", err
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	bin, err := pgcluster.BinDirFor(v, wd)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL %d (%s): %w", v, VersionEnv, err)
	}
	return bin, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
