// Package pgcluster runs a private PostgreSQL server from a data directory:
// initdb when the directory is new, postgres as a child process (as the
// postgres OS user when the caller is root, since both refuse root), and a
// fast shutdown. The test kit uses it for throwaway clusters and scripts/dev
// for the one it keeps in ./.dev.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options describes the cluster.
type Options struct {
	// DataDir is the data directory; initdb runs when it has no PG_VERSION.
	DataDir string
	// SocketDir holds the Unix socket (default: DataDir's parent).
	SocketDir string
	// LogFile receives the server's output (default: DataDir/../postgres.log).
	LogFile string
	Port    int
	// Settings are postgresql.conf settings passed with -c.
	Settings map[string]string
	// BinDir holds initdb and postgres (default: BinDir()).
	BinDir string
}

// Cluster is a running server.
type Cluster struct {
	Options
	cmd    *exec.Cmd
	cred   *syscall.Credential
	exited chan struct{}
}

// ErrExited means postgres stopped during start-up; the error carries the
// tail of its log.
var ErrExited = errors.New("postgres exited during start-up")

// Start initialises the data directory if needed and starts the server,
// returning once it accepts connections (or failing with its log's tail).
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := opts.BinDir, error(nil)
	if bin == "" {
		bin, err = BinDir()
	}
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(opts.DataDir)
	if opts.SocketDir == "" {
		opts.SocketDir = parent
	}
	if opts.LogFile == "" {
		opts.LogFile = filepath.Join(parent, "postgres.log")
	}
	c := &Cluster{Options: opts, exited: make(chan struct{})}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres OS user (install PostgreSQL server packages: scripts/install-deps): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{parent, opts.SocketDir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("chown %s to postgres: %w", d, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(opts.DataDir, "PG_VERSION")); err != nil {
		initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", opts.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
		if out, err := c.run(initdb); err != nil {
			return nil, fmt.Errorf("initdb %s: %w\n%s", opts.DataDir, err, out)
		}
	}
	args := []string{"-D", opts.DataDir, "-p", strconv.Itoa(opts.Port), "-c", "unix_socket_directories=" + opts.SocketDir}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+opts.Settings[k])
	}
	logf, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open postgres log: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	logStart, _ := logf.Seek(0, 2)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	go func() { cmd.Wait(); logf.Close(); close(c.exited) }()

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%w:\n%s", ErrExited, c.logTail(logStart))
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("postgres did not accept connections within 60s (%v):\n%s", err, c.logTail(logStart))
		case <-tick.C:
		}
	}
}

// URL is a connection string for database db over TCP loopback.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Stop shuts the server down in fast mode (SIGINT) and waits, killing it
// after 30 s.
func (c *Cluster) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil
	case <-time.After(30 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		return errors.New("postgres did not stop within 30s; killed")
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (c *Cluster) Kill() {
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

// Exited is closed when the server process ends.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

func (c *Cluster) logTail(from int64) string {
	b, _ := os.ReadFile(c.LogFile)
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (c *Cluster) run(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = os.TempDir()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	err := cmd.Run()
	return out.Bytes(), err
}

// BinDir finds the system's server binaries: PG_BIN, pg_config's bindir,
// or the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
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
		return "", errors.New("no PostgreSQL server binaries found (initdb); run scripts/install-deps or set PG_BIN")
	}
	return best, nil
}

// Versions are the PostgreSQL major versions walbridge supports and tests.
var Versions = []int{14, 15, 16, 17, 18}

// DefaultVersion is the version test clusters and scripts/dev run when none
// is asked for: the newest that passes the whole suite.
const DefaultVersion = 18

// BinDirFor finds the server binaries of PostgreSQL major version v: the
// system's (BinDir) when they are that version, else the pinned build in
// scripts/pg-versions of the repository that holds dir (scripts/install-deps
// installs one per supported version). v = 0 means the system's.
func BinDirFor(v int, dir string) (string, error) {
	sys, sysErr := BinDir()
	if v == 0 {
		return sys, sysErr
	}
	if sysErr == nil {
		if got, err := MajorVersion(sys); err == nil && got == v {
			return sys, nil
		}
	}
	if !slices.Contains(Versions, v) {
		return "", fmt.Errorf("PostgreSQL %d is not a supported version (%v)", v, Versions)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			bin := filepath.Join(d, "scripts", "pg-versions", "node_modules", fmt.Sprintf("pg%d", v), "native", "bin")
			if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
				return "", fmt.Errorf("PostgreSQL %d binaries are not installed in %s: run scripts/install-deps", v, bin)
			}
			return reachable(bin, v)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("PostgreSQL %d: no repository (go.mod) above %s to find scripts/pg-versions in", v, dir)
		}
	}
}

// reachable returns bin, or when root runs the server as the postgres user
// and that user cannot reach bin (a checkout under /root), a copy of its
// build under /var/tmp that it can.
func reachable(bin string, v int) (string, error) {
	if os.Geteuid() != 0 || OthersCanTraverse(bin) {
		return bin, nil
	}
	native := filepath.Dir(bin)
	h := fnv.New32a()
	h.Write([]byte(native))
	dst := filepath.Join("/var/tmp", fmt.Sprintf("walbridge-pg%d-%x", v, h.Sum32()))
	if _, err := os.Stat(filepath.Join(dst, "bin", "initdb")); err == nil {
		return filepath.Join(dst, "bin"), nil
	}
	tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid()) // test binaries of several packages may copy at once
	os.RemoveAll(tmp)
	if out, err := exec.Command("cp", "-a", native, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy PostgreSQL %d where the postgres user can run it: %v: %s", v, err, out)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(filepath.Join(dst, "bin", "initdb")); statErr != nil {
			return "", fmt.Errorf("copy PostgreSQL %d: %w", v, err)
		}
	}
	return filepath.Join(dst, "bin"), nil
}

// OthersCanTraverse reports whether every directory from path up to / lets
// other users through: whether the postgres OS user, which the server runs
// as when we are root, can reach path.
func OthersCanTraverse(path string) bool {
	for d := path; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// MajorVersion is the major version of the postgres binary in bin.
func MajorVersion(bin string) (int, error) {
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s/postgres --version: %w", bin, err)
	}
	// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return 0, fmt.Errorf("unexpected postgres --version output %q", out)
	}
	major, _, _ := strings.Cut(fields[2], ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("unexpected postgres --version output %q", out)
	}
	return n, nil
}
