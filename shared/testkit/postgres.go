// Package testkit starts the real parts walbridge's tests run against: a
// throwaway PostgreSQL cluster with logical WAL and the pinned Kinesis
// emulator. When a part can't start the test fails with the reason; nothing is
// ever skipped, because a missing dependency is an install bug.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a running throwaway cluster.
type Postgres struct {
	Dir     string // data directory
	Port    int
	Socket  string // socket directory
	LogFile string
	cmd     *exec.Cmd
	cred    *syscall.Credential
	exited  chan struct{}
}

// PostgresOptions tunes the cluster; the zero value is what most tests want.
type PostgresOptions struct {
	// WALLevel defaults to "logical".
	WALLevel string
	// Settings are extra postgresql.conf settings (name → value).
	Settings map[string]string
}

// StartPostgres starts a cluster for the test and stops and removes it when
// the test ends.
func StartPostgres(tb testing.TB, opts PostgresOptions) *Postgres {
	tb.Helper()
	pg, err := NewPostgres(opts)
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

// NewPostgres initialises and starts a cluster in a fresh directory under
// /tmp (t.TempDir() sits below a directory the postgres user cannot enter).
// When running as root the server runs as the postgres OS user, since initdb
// and postgres refuse root. The caller must Stop it.
func NewPostgres(opts PostgresOptions) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	if opts.WALLevel == "" {
		opts.WALLevel = "logical"
	}
	root, err := os.MkdirTemp("", "walbridge-pg-")
	if err != nil {
		return nil, fmt.Errorf("make cluster dir: %w", err)
	}
	pg := &Postgres{Dir: filepath.Join(root, "data"), Socket: root, LogFile: filepath.Join(root, "postgres.log"), exited: make(chan struct{})}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("running as root needs the postgres OS user (install PostgreSQL server packages: scripts/install-deps): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", pg.Dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := pg.run(initdb); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	settings := map[string]string{
		"wal_level":               opts.WALLevel,
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": root,
		"max_connections":         "50",
		"shared_buffers":          "64MB",
		"wal_sender_timeout":      "60s",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(root)
			return nil, err
		}
		pg.Port = port
		if err := pg.start(bin, settings); err == nil {
			return pg, nil
		} else if attempt >= 3 {
			os.RemoveAll(root)
			return nil, err
		}
		pg.exited = make(chan struct{})
	}
}

func (pg *Postgres) start(bin string, settings map[string]string) error {
	args := []string{"-D", pg.Dir, "-p", strconv.Itoa(pg.Port)}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	logf, err := os.OpenFile(pg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	pg.cmd = cmd
	go func() { cmd.Wait(); logf.Close(); close(pg.exited) }()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-pg.exited:
			log, _ := os.ReadFile(pg.LogFile)
			return fmt.Errorf("postgres exited during start-up:\n%s", tail(log, 2000))
		case <-ctx.Done():
			log, _ := os.ReadFile(pg.LogFile)
			return fmt.Errorf("postgres did not accept connections within 60s (%v):\n%s", err, tail(log, 2000))
		case <-tick.C:
		}
	}
}

// URL is a connection string for database db over TCP loopback.
func (pg *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, db)
}

// CreateDatabase creates a database and returns its URL.
func (pg *Postgres) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	pg.Exec(tb, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return pg.URL(name)
}

// Exec runs SQL statements in database db and fails the test on error.
func (pg *Postgres) Exec(tb testing.TB, db string, sql ...string) {
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

// Stop shuts the server down (fast mode) and removes its directory.
func (pg *Postgres) Stop() error {
	var err error
	if pg.cmd != nil && pg.cmd.Process != nil {
		pg.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-pg.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-pg.cmd.Process.Pid, syscall.SIGKILL)
			<-pg.exited
			err = fmt.Errorf("postgres did not stop within 30s; killed")
		}
	}
	if rmErr := os.RemoveAll(pg.Socket); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Kill stops the server abruptly (SIGKILL), as a crash would, keeping its files.
func (pg *Postgres) Kill() {
	syscall.Kill(-pg.cmd.Process.Pid, syscall.SIGKILL)
	<-pg.exited
}

func (pg *Postgres) run(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = os.TempDir()
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	err := cmd.Run()
	return out.Bytes(), err
}

// PostgresBinDir finds the server binaries: $PG_BIN, then pg_config --bindir,
// then the newest /usr/lib/postgresql/*/bin.
func PostgresBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestVer := "", 0
	for _, m := range matches {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if v > bestVer {
			best, bestVer = filepath.Dir(m), v
		}
	}
	if best == "" {
		return "", fmt.Errorf("no PostgreSQL server binaries found (initdb); run scripts/install-deps or set PG_BIN")
	}
	return best, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
