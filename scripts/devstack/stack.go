package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/slot"
	"github.com/walbridge/walbridge/scripts/devstack/console"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/localfn"
	"github.com/walbridge/walbridge/shared/pgcluster"
	"github.com/walbridge/walbridge/shared/procgroup"
	"github.com/walbridge/walbridge/shared/provision"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

const streamName = "walbridge"

// settings are devstack's knobs: flags, with environment defaults so that
// tests and a second copy can move every port.
type settings struct {
	demo        bool
	dir         string
	databaseURL string
	verbose     bool
	pgPort      int
	kinesisPort int
	busPort     int
	s3Port      int
	busKind     string
	// rules is the folder of templates and dev rules the local bus loads;
	// functions says whether the functions its rules target run locally.
	rules     string
	functions bool
	// consolePort is the web console's port.
	consolePort int
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func parseSettings(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("scripts/dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&s.verbose, "verbose", false, "print each event's whole JSON instead of one line")
	fs.BoolVar(&s.demo, "demo", false, "create the users table, insert, update and delete a row, and wait for the three events")
	fs.StringVar(&s.dir, "dir", envOr("WALBRIDGE_DEV_DIR", ".dev"), "state folder: the private cluster, binaries, logs (env WALBRIDGE_DEV_DIR)")
	fs.StringVar(&s.databaseURL, "database-url", "", "use this database instead of a private cluster; it needs wal_level=logical. Only this flag names one: an exported DATABASE_URL is left alone")
	fs.IntVar(&s.pgPort, "pg-port", envInt("WALBRIDGE_DEV_PG_PORT", 54329), "private cluster's port (env WALBRIDGE_DEV_PG_PORT)")
	fs.IntVar(&s.kinesisPort, "kinesis-port", envInt("WALBRIDGE_DEV_KINESIS_PORT", 4567), "Kinesis emulator's port (env WALBRIDGE_DEV_KINESIS_PORT)")
	fs.IntVar(&s.s3Port, "s3-port", envInt("WALBRIDGE_DEV_S3_PORT", 4569), "S3 stand-in's port (s3rver), the claim check's bucket (env WALBRIDGE_DEV_S3_PORT)")
	fs.IntVar(&s.busPort, "bus-port", envInt("WALBRIDGE_DEV_BUS_PORT", 4010), "local event bus's port (env WALBRIDGE_DEV_BUS_PORT)")
	fs.StringVar(&s.busKind, "bus-kind", envOr("WALBRIDGE_DEV_BUS_KIND", "classic"), "classic: the local bus as a classic bus with the infra/ rules; ordered: as an ordered bus (FIFO per row, repeats within 5 minutes dropped) with the infra/ subscribers (env WALBRIDGE_DEV_BUS_KIND)")
	fs.IntVar(&s.consolePort, "console-port", envInt("WALBRIDGE_DEV_CONSOLE_PORT", 4011), "the web console's port: live events, rules and deliveries, a pattern playground, pipeline health (env WALBRIDGE_DEV_CONSOLE_PORT)")
	fs.StringVar(&s.rules, "rules", envOr("WALBRIDGE_DEV_RULES_DIR", "infra"), "folder of the templates and dev-rules/ the local bus loads, reloaded when they change (env WALBRIDGE_DEV_RULES_DIR)")
	fs.BoolVar(&s.functions, "functions", true, "run the Lambda functions the rules target (handlers from scripts/newhandler, Go and TypeScript) under aws-lambda-rie on the events they match; false only names them")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.busKind != "classic" && s.busKind != "ordered" {
		return s, fmt.Errorf("--bus-kind %q: want classic or ordered", s.busKind)
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	abs, err := filepath.Abs(s.dir)
	if err != nil {
		return s, err
	}
	s.dir = abs
	return s, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// orderedBusARN names the local bus when it runs as an ordered bus
// (--bus-kind ordered); only its form matters to fanout.
const orderedBusARN = "arn:aws:events:us-east-1:" + localbus.Account + ":event-busv2/walbridge/walbridgedevbus0000000000"

// stack is everything devstack started, so that it can be stopped in order.
type stack struct {
	s settings
	// On a database named by --database-url: capture's environment, and
	// whether this run's setup created the slot (dropped again on exit).
	externalEnv []string
	createdSlot bool
	out         *prefixer
	pg          *pgcluster.Cluster
	procs       []*child
	bus         *localbus.Bus
	functions   *localfn.Manager   // the rules' functions running locally, or nil
	stopWatch   context.CancelFunc // the rules' reloader
	busSrv      *http.Server
	busLog      *os.File
	console     *console.Server
	consoleSrv  *http.Server
	health      *healthReader
	failed      chan string // a child that exited on its own
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "scripts/dev:", err)
		return 2
	}
	st := &stack{s: s, out: newPrefixer(stdout), failed: make(chan string, 8)}
	defer st.stop()
	if err := st.start(ctx); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		st.out.line("dev", "ERROR: "+err.Error())
		return 1
	}
	select {
	case <-ctx.Done():
		st.out.line("dev", "stopping (Ctrl-C)")
		return 0
	case name := <-st.failed:
		st.out.line("dev", "ERROR: "+name+" exited unexpectedly; stopping everything (its output is above)")
		return 1
	}
}

func (st *stack) start(ctx context.Context) error {
	s := st.s
	for _, dir := range []string{s.dir, filepath.Join(s.dir, "bin")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node (Node.js) is not installed; it runs the Kinesis emulator. Install it: apt-get install nodejs npm")
	}
	ports := map[string]int{"Kinesis emulator (--kinesis-port, WALBRIDGE_DEV_KINESIS_PORT)": s.kinesisPort, "event bus (--bus-port, WALBRIDGE_DEV_BUS_PORT)": s.busPort,
		"console (--console-port, WALBRIDGE_DEV_CONSOLE_PORT)": s.consolePort, "S3 stand-in (--s3-port, WALBRIDGE_DEV_S3_PORT)": s.s3Port}
	if s.databaseURL == "" {
		ports["PostgreSQL (--pg-port, WALBRIDGE_DEV_PG_PORT)"] = s.pgPort
	}
	for what, port := range ports {
		if err := portFree(port); err != nil {
			return fmt.Errorf("port %d for the %s is in use (%v). Is another scripts/dev running? Stop it, or choose another port", port, what, err)
		}
	}

	if s.databaseURL == "" && os.Getenv("DATABASE_URL") != "" {
		st.out.line("dev", "DATABASE_URL is set; scripts/dev leaves that database alone and uses its private cluster (--database-url URL uses yours)")
	}
	st.out.line("dev", "building capture and fanout")
	for _, name := range []string{"capture", "fanout"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(s.dir, "bin", name), "./"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./%s: %w\n%s", name, err, out)
		}
	}

	dbURL, err := st.startPostgres(ctx)
	if err != nil {
		return err
	}
	kinesisURL, err := st.startKinesis(ctx)
	if err != nil {
		return err
	}
	s3URL, err := st.startS3(ctx)
	if err != nil {
		return err
	}
	busURL, err := st.startBus(dbName(dbURL), s3URL)
	if err != nil {
		return err
	}

	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	consoleURL, err := st.startConsole(dbURL, metricsAddr)
	if err != nil {
		return err
	}

	env := []string{
		"DATABASE_URL=" + dbURL, "WALBRIDGE_STREAM=" + streamName, "WALBRIDGE_METRICS_ADDR=" + metricsAddr,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_KINESIS=" + kinesisURL, "AWS_ENDPOINT_URL_EVENTBRIDGE=" + busURL,
		"WALBRIDGE_CLAIM_CHECK_BUCKET=" + claimCheckBucket,
	}
	env = append(env, s3Env(s3URL)...)
	if s.busKind == "ordered" {
		// fanout picks the ordered bus's client for an event-busv2 ARN.
		env = append(env, "WALBRIDGE_EVENT_BUS="+orderedBusARN, "AWS_ENDPOINT_URL_EVENTBRIDGEV2="+busURL)
		st.out.line("dev", "the local bus is an ordered bus ("+orderedBusARN+"): FIFO per row, repeats within 5 minutes dropped")
	} else {
		env = append(env, "WALBRIDGE_EVENT_BUS=default")
	}
	polEnv, note := policyEnv(".", os.Getenv)
	env = append(env, polEnv...)
	if note != "" {
		st.out.line("dev", note)
	}
	if s.databaseURL != "" {
		if err := st.announceSetup(ctx, dbURL); err != nil {
			return err
		}
	}
	st.out.line("dev", "capture setup")
	setup := exec.CommandContext(ctx, filepath.Join(s.dir, "bin", "capture"), "setup", "--keyless=full", "--event-trigger")
	setup.Env = append(os.Environ(), env...)
	var setupOut bytes.Buffer
	setup.Stdout = io.MultiWriter(st.out.writer("capture"), &setupOut)
	setup.Stderr = st.out.writer("capture")
	err = setup.Run()
	if s.databaseURL != "" {
		st.externalEnv = env
		st.createdSlot = strings.Contains(setupOut.String(), "created replication slot")
	}
	if err != nil {
		return fmt.Errorf("capture setup failed (see above): %w", err)
	}
	if _, err := st.spawn("capture", env, filepath.Join(s.dir, "bin", "capture"), "run"); err != nil {
		return err
	}
	// The emulator keeps nothing across runs, so neither may the checkpoint.
	checkpoint := filepath.Join(s.dir, "fanout.checkpoint")
	os.Remove(checkpoint)
	if _, err := st.spawn("fanout", env, filepath.Join(s.dir, "bin", "fanout"), "poll", "--stream", streamName, "--from", "trim-horizon", "--checkpoint", checkpoint); err != nil {
		return err
	}

	st.out.line("dev", "ready. Connect with:")
	st.out.line("dev", "  psql '"+dbURL+"'")
	st.out.line("dev", "and try:")
	st.out.line("dev", "  CREATE TABLE notes (id serial PRIMARY KEY, body text);")
	st.out.line("dev", "  INSERT INTO notes (body) VALUES ('hello');")
	if s.verbose {
		st.out.line("dev", "Each change appears below as a DatabaseEvent ([bus]), with the infra/ rules it matches.")
	} else {
		st.out.line("dev", "Each change appears below as one line ([bus]): table, operation, first column, changed columns → the infra/ rules it matches (--verbose: the whole event).")
	}
	st.out.line("dev", "Events are also written, whole, to "+filepath.Join(s.dir, "events.jsonl")+". Ctrl-C stops everything.")
	st.out.line("dev", "Watch them in the console: "+consoleURL+" (live events, the rules they matched and their deliveries, a pattern playground, pipeline health)")
	st.out.line("dev", "After a restart some events may come again: delivery is at least once; consumers drop repeats by lsn and seq.")
	if s.demo {
		return st.demo(ctx, dbURL)
	}
	return nil
}

// announceSetup says, before it happens, what capture setup will change on a
// database that is not scripts/dev's own.
func (st *stack) announceSetup(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to --database-url: %w", err)
	}
	defer conn.Close(context.Background())
	tables, err := slot.CapturedTables(ctx, conn, "walbridge", nil, nil)
	if err != nil {
		return err
	}
	var keyless []string
	for _, t := range tables {
		if t.Keyless() {
			keyless = append(keyless, t.Name())
		}
	}
	var slotExists, pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM pg_replication_slots WHERE slot_name = 'walbridge'),
		EXISTS(SELECT 1 FROM pg_publication WHERE pubname = 'walbridge')`).Scan(&slotExists, &pubExists); err != nil {
		return fmt.Errorf("look up slot and publication: %w", err)
	}
	say := func(s string) { st.out.line("dev", s) }
	say("capture setup will change the database " + dbName(url) + " (--database-url):")
	if !pubExists {
		say("  - create the publication walbridge FOR ALL TABLES")
	}
	if len(keyless) > 0 {
		say("  - set REPLICA IDENTITY FULL on tables without a primary key: " + strings.Join(keyless, ", "))
	}
	say("  - install the DDL event trigger walbridge_new_tables and the schema walbridge (backfill state, the tables' confirmed shapes)")
	if slotExists {
		say("  - use the existing replication slot walbridge (left in place on exit)")
	} else {
		say("  - create the replication slot walbridge, which keeps WAL on the server until dropped: scripts/dev drops it on exit")
	}
	return nil
}

// dropExternalSlot drops the slot this run created on a --database-url
// database, once capture has stopped, and says what else stays.
func (st *stack) dropExternalSlot() {
	if st.externalEnv == nil {
		return
	}
	capture := filepath.Join(st.s.dir, "bin", "capture")
	if !st.createdSlot {
		st.out.line("dev", "the replication slot walbridge was there before and stays; drop it with: "+capture+" teardown --yes")
		return
	}
	cmd := exec.Command(capture, "teardown", "--yes")
	cmd.Env = append(os.Environ(), st.externalEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		st.out.line("dev", fmt.Sprintf("could not drop the replication slot walbridge (%v): %s; drop it with: %s teardown --yes", err, strings.TrimSpace(string(out)), capture))
		return
	}
	st.out.line("dev", "dropped the replication slot walbridge this run created; the publication, event trigger and schema walbridge stay ("+
		capture+" teardown --yes --drop-publication --drop-event-trigger --drop-schema removes them)")
}

func dbName(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "app"
	}
	return cfg.Database
}

// startPostgres checks DATABASE_URL or starts the private cluster, and
// returns the URL capture uses.
func (st *stack) startPostgres(ctx context.Context) (string, error) {
	if url := st.s.databaseURL; url != "" {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return "", fmt.Errorf("connect to --database-url: %w", err)
		}
		defer conn.Close(context.Background())
		var level string
		if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
			return "", fmt.Errorf("read wal_level: %w", err)
		}
		if level != "logical" {
			return "", fmt.Errorf("the database at --database-url has wal_level = %s; walbridge needs wal_level = logical.\n"+
				"  Fix: run  ALTER SYSTEM SET wal_level = logical;  and restart PostgreSQL\n"+
				"  (RDS/Aurora: set rds.logical_replication = 1 in the DB parameter group and reboot).\n"+
				"  Or leave --database-url out to use a private cluster in %s", level, st.s.dir)
		}
		st.out.line("postgres", "using --database-url (wal_level = logical)")
		return url, nil
	}
	root, err := clusterRoot(st.s.dir)
	if err != nil {
		return "", err
	}
	version, bin, err := devPostgres(filepath.Join(root, "data"))
	if err != nil {
		return "", err
	}
	st.out.line("postgres", fmt.Sprintf("starting the private cluster (PostgreSQL %d) in %s on port %d", version, root, st.s.pgPort))
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: filepath.Join(root, "data"), Port: st.s.pgPort, BinDir: bin,
		Settings: map[string]string{"wal_level": "logical", "listen_addresses": "127.0.0.1", "max_replication_slots": "10", "max_wal_senders": "10"},
	})
	if err != nil {
		return "", fmt.Errorf("start the private PostgreSQL cluster: %w", err)
	}
	st.pg = c
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM pg_database WHERE datname = 'app')`).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE app`); err != nil {
			return "", fmt.Errorf("create database app: %w", err)
		}
	}
	return c.URL("app"), nil
}

// devPostgres picks the private cluster's PostgreSQL: WALBRIDGE_DEV_PG_VERSION,
// else the version of an existing data directory (a cluster made by an
// earlier run keeps working), else pgcluster.DefaultVersion.
func devPostgres(dataDir string) (int, string, error) {
	existing := 0
	if b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		existing, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	version := pgcluster.DefaultVersion
	if v := os.Getenv("WALBRIDGE_DEV_PG_VERSION"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, "", fmt.Errorf("WALBRIDGE_DEV_PG_VERSION=%q: want a major version such as 17", v)
		}
		if existing != 0 && existing != n {
			return 0, "", fmt.Errorf("the private cluster in %s is PostgreSQL %d, not %d: remove that folder to start over on %d, or unset WALBRIDGE_DEV_PG_VERSION", dataDir, existing, n, n)
		}
		version = n
	} else if existing != 0 {
		version = existing
	}
	wd, err := os.Getwd()
	if err != nil {
		return 0, "", err
	}
	bin, err := pgcluster.BinDirFor(version, wd)
	if err != nil {
		return 0, "", fmt.Errorf("PostgreSQL %d for the private cluster: %w", version, err)
	}
	return version, bin, nil
}

// clusterRoot is dir/pg, unless the postgres OS user (which the server runs
// as when we are root) cannot reach it: then a folder under /var/tmp named
// after dir, linked from dir/pg.
func clusterRoot(dir string) (string, error) {
	want := filepath.Join(dir, "pg")
	if os.Geteuid() != 0 || pgcluster.OthersCanTraverse(dir) {
		return want, os.MkdirAll(want, 0o700)
	}
	if target, err := os.Readlink(want); err == nil {
		return target, os.MkdirAll(target, 0o700)
	}
	alt := filepath.Join("/var/tmp", "walbridge-dev-"+strings.ReplaceAll(strings.Trim(dir, "/"), "/", "_"))
	if err := os.MkdirAll(alt, 0o700); err != nil {
		return "", err
	}
	os.RemoveAll(want)
	return alt, os.Symlink(alt, want)
}

func (st *stack) startKinesis(ctx context.Context) (string, error) {
	url, err := st.startStandIn(ctx, "kinesis", "the Kinesis emulator", "kinesalite", "serve.js", strconv.Itoa(st.s.kinesisPort))
	if err != nil {
		return "", err
	}
	if err := createStream(ctx, url); err != nil {
		return "", err
	}
	st.out.line("kinesis", "stream "+streamName+" ready at "+url)
	return url, nil
}

// startStandIn runs one of the Node.js stand-ins of scripts/kinesis-emulator
// (module is its npm package) as a child tagged tag, and returns its URL
// once it prints "listening PORT".
func (st *stack) startStandIn(ctx context.Context, tag, what, module string, args ...string) (string, error) {
	dir := filepath.Join("scripts", "kinesis-emulator")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		return "", fmt.Errorf("%s (%s) is not installed: run scripts/install-deps", what, module)
	}
	ready := make(chan string, 1)
	c, err := st.spawnWatch(tag, nil, dir, func(line string) {
		if p, ok := strings.CutPrefix(line, "listening "); ok {
			select {
			case ready <- p:
			default:
			}
		}
	}, "node", args...)
	if err != nil {
		return "", err
	}
	select {
	case port := <-ready:
		return "http://127.0.0.1:" + port, nil
	case <-c.done:
		return "", fmt.Errorf("%s exited at start (see above)", what)
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s did not start within 30s", what)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func createStream(ctx context.Context, url string) error {
	cfg, err := sdkbody.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	if err != nil {
		return err
	}
	_, err = provision.Stream(ctx, kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) }), streamName, 2)
	return err
}

// claimCheckBucket is the S3 stand-in's bucket for the claim check.
const claimCheckBucket = "walbridge-claim-check"

// s3Env points a process's SDK at the S3 stand-in, with the one key it
// accepts (the Kinesis emulator and the bus accept any).
func s3Env(url string) []string {
	return []string{"AWS_ENDPOINT_URL_S3=" + url, "AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER"}
}

// startS3 runs s3rver with the claim check's bucket, its objects in the
// state folder.
func (st *stack) startS3(ctx context.Context) (string, error) {
	data, err := filepath.Abs(filepath.Join(st.s.dir, "s3"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	url, err := st.startStandIn(ctx, "s3", "the S3 stand-in", "s3rver", "s3.js", strconv.Itoa(st.s.s3Port), data, claimCheckBucket)
	if err != nil {
		return "", err
	}
	st.out.line("s3", "bucket "+claimCheckBucket+" ready at "+url+": values too large for a record or an event go there (the claim check)")
	return url, nil
}

func (st *stack) startBus(database, s3URL string) (string, error) {
	dir := st.s.rules
	opts := localbus.LoadOptions{Params: map[string]string{"ResourceName": database}}
	watcher := localbus.NewWatcher(dir, opts)
	rs, err := localbus.Load(dir, opts)
	if err != nil {
		return "", fmt.Errorf("load rules from %s: %w", dir, err)
	}
	rs.Report(st.out.writer("bus"))
	attach := func(rules []localbus.Rule) []localbus.Rule { return rules }
	if st.s.functions {
		st.functions = localfn.NewManager(localfn.Options{RIE: filepath.Join("bin", "aws-lambda-rie"), WorkDir: filepath.Join(st.s.dir, "functions"),
			Env: append(s3Env(s3URL), "WALBRIDGE_CLAIM_CHECK_BUCKET="+claimCheckBucket)},
			func(id string) io.Writer { return st.out.writer(id) }, st.out.writer("bus"))
		attach = func(rules []localbus.Rule) []localbus.Rule { return st.functions.Attach(context.Background(), rules) }
	}
	f, err := os.Create(filepath.Join(st.s.dir, "events.jsonl"))
	if err != nil {
		return "", err
	}
	st.busLog = f
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s3URL), UsePathStyle: true, DisableLogOutputChecksumValidationSkipped: true,
		Credentials: credentials.NewStaticCredentialsProvider("S3RVER", "S3RVER", "")})
	resolve := func(ctx context.Context, detail []byte) ([]byte, error) { return claimcheck.Resolve(ctx, s3c, detail) }
	st.bus = localbus.New(attach(rs.Rules), localbus.Options{Out: st.out.writer("bus"), JSONLines: f, Compact: !st.s.verbose, Resolve: resolve})
	// A rule newhandler writes, an edit, or a handler's new code applies
	// from the next event.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	st.stopWatch = stopWatch
	go watcher.Run(watchCtx, time.Second, func(rs *localbus.RuleSet) {
		st.out.line("bus", fmt.Sprintf("%s changed: rules reloaded (%d)", dir, len(rs.Rules)))
		rs.Report(st.out.writer("bus"))
		st.bus.SetRules(attach(rs.Rules))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(st.s.busPort))
	if err != nil {
		return "", fmt.Errorf("event bus: %w", err)
	}
	st.busSrv = &http.Server{Handler: st.bus, ReadHeaderTimeout: 5 * time.Second}
	go st.busSrv.Serve(ln)
	url := "http://" + ln.Addr().String()
	st.out.line("bus", "local event bus at "+url)
	return url, nil
}

// startConsole serves the web console on its port and returns its URL.
func (st *stack) startConsole(dbURL, metricsAddr string) (string, error) {
	st.health = newHealthReader(dbURL, metricsAddr)
	st.console = console.New(console.Options{Bus: st.bus, Health: st.health.read})
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(st.s.consolePort))
	if err != nil {
		return "", fmt.Errorf("console: %w", err)
	}
	st.consoleSrv = &http.Server{Handler: st.console, ReadHeaderTimeout: 5 * time.Second}
	go st.consoleSrv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/"
	st.out.line("dev", "console at "+url)
	return url, nil
}

// freeAddr is a free loopback address for a child to listen on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// demo plays the users scenario and waits for its three events.
func (st *stack) demo(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, first_name varchar(100), last_name varchar(100), email varchar(200))`,
		// The full old row makes changedValues exact, as in the contract's examples.
		`ALTER TABLE users REPLICA IDENTITY FULL`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("demo: %s: %w", s, err)
		}
	}
	since := len(st.bus.Records())
	var id int
	if err := conn.QueryRow(ctx, `INSERT INTO users (first_name, last_name, email) VALUES ('Ben', 'Limmer', 'ben@example.com') RETURNING id`).Scan(&id); err != nil {
		return fmt.Errorf("demo insert: %w", err)
	}
	st.out.line("demo", fmt.Sprintf("inserted users row %d (Ben)", id))
	if _, err := conn.Exec(ctx, `UPDATE users SET email = 'ben_new@example.com' WHERE id = $1`, id); err != nil {
		return fmt.Errorf("demo update: %w", err)
	}
	st.out.line("demo", "updated his e-mail")
	if _, err := conn.Exec(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
		return fmt.Errorf("demo delete: %w", err)
	}
	st.out.line("demo", "deleted him; waiting for the three DatabaseEvents")
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		got := demoOps(st.bus.Records()[since:], id)
		if len(got) >= 3 {
			st.out.line("demo", "received "+strings.Join(got, ", ")+": the pipeline works. Ctrl-C to stop, or keep changing data.")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("demo: only %v of insert, update, delete arrived within 2 minutes", got)
		case <-tick.C:
		}
	}
}

// demoOps lists the operations of events for users row id, in arrival order.
func demoOps(recs []localbus.Record, id int) []string {
	var ops []string
	for _, r := range recs {
		var d struct {
			Table     string `json:"table"`
			Operation string `json:"operation"`
			New       map[string]struct {
				Value json.RawMessage `json:"value"`
			} `json:"newValues"`
			Old map[string]struct {
				Value json.RawMessage `json:"value"`
			} `json:"oldValues"`
		}
		if json.Unmarshal(r.Event.Detail, &d) != nil || d.Table != "users" {
			continue
		}
		row := d.New
		if row == nil {
			row = d.Old
		}
		if string(row["id"].Value) == strconv.Itoa(id) {
			ops = append(ops, d.Operation)
		}
	}
	return ops
}

// stop ends everything in reverse order of dependence: fanout and capture
// first (capture drains and confirms), then the bus, the emulator, and the
// private cluster.
func (st *stack) stop() {
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].stop(30 * time.Second)
	}
	if st.busSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st.busSrv.Shutdown(ctx)
		cancel()
	}
	if st.consoleSrv != nil {
		// Shutdown does not wait for the console's streams: Close ends them.
		st.consoleSrv.Close()
	}
	if st.console != nil {
		st.console.Close()
	}
	if st.health != nil {
		st.health.close()
	}
	if st.stopWatch != nil {
		st.stopWatch()
	}
	if st.bus != nil {
		st.bus.Close()
	}
	if st.functions != nil {
		st.functions.Close()
	}
	if st.busLog != nil {
		st.busLog.Close()
	}
	st.dropExternalSlot()
	if st.pg != nil {
		if err := st.pg.Stop(); err != nil {
			st.out.line("postgres", "stop: "+err.Error())
		}
	}
	st.out.line("dev", "stopped")
}

// child is a process devstack started, in its own process group so that a
// terminal's Ctrl-C reaches devstack alone and the order of shutdown is ours.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (st *stack) spawn(name string, env []string, bin string, args ...string) (*child, error) {
	return st.spawnWatch(name, env, "", nil, bin, args...)
}

func (st *stack) spawnWatch(name string, env []string, dir string, watch func(string), bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := st.out.writer(name)
	var pw *io.PipeWriter
	if watch != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				watch(sc.Text())
				w.Write([]byte(sc.Text() + "\n"))
			}
			io.Copy(io.Discard, pr)
		}()
		cmd.Stdout = pw
	} else {
		cmd.Stdout = w
	}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	st.procs = append(st.procs, c)
	go func() {
		cmd.Wait()
		if pw != nil {
			pw.Close()
		}
		close(c.done)
		select {
		case st.failed <- name:
		default:
		}
	}()
	return c, nil
}

func (c *child) stop(grace time.Duration) { procgroup.Stop(c.cmd, c.done, grace) }

func portFree(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}

// prefixer writes whole lines, each behind its part's tag, to one output.
type prefixer struct {
	mu  sync.Mutex
	out io.Writer
}

func newPrefixer(out io.Writer) *prefixer { return &prefixer{out: out} }

func (p *prefixer) line(tag, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "[%s] %s\n", tag, s)
}

func (p *prefixer) writer(tag string) io.Writer { return &lineWriter{p: p, tag: tag} }

type lineWriter struct {
	p   *prefixer
	tag string
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.p.line(w.tag, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// PolicyFile is the column policy scripts/dev applies when it exists at the
// repository root.
const PolicyFile = "walbridge-policy.yaml"

// policyEnv is capture's environment for the policy in root, if there is
// one: the file, and a development hash key unless WALBRIDGE_HASH_KEY is set.
// note says what was chosen.
func policyEnv(root string, getenv func(string) string) (env []string, note string) {
	file, err := filepath.Abs(filepath.Join(root, PolicyFile))
	if err != nil {
		return nil, ""
	}
	if _, err := os.Stat(file); err != nil {
		return nil, ""
	}
	env = []string{"WALBRIDGE_POLICY=" + file}
	note = "column policy " + PolicyFile + " applies"
	if getenv("WALBRIDGE_HASH_KEY") == "" {
		env = append(env, "WALBRIDGE_HASH_KEY=walbridge-dev-hash-key")
		note += " (hash rules use the development key walbridge-dev-hash-key; set WALBRIDGE_HASH_KEY for another)"
	}
	return env, note
}
