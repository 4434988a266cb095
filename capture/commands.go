package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/capture/backfill"
	"github.com/walbridge/walbridge/capture/cwmetrics"
	"github.com/walbridge/walbridge/capture/putrecords"
	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/capture/shapes"
	"github.com/walbridge/walbridge/capture/slot"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/logging"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/policy"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

var errHelp = errors.New("help")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return conn, nil
}

func cmdSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("setup", &cfg, stderr, "database-url", "slot", "publication", "schemas", "tables", "replica-identity-full", "keyless", "event-trigger", "policy", "strict-policy", "failover", "cloudwatch")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	err := setup(ctx, cfg, stdout)
	if cfg.CloudWatch {
		// The instance runs setup before every start: a refusal is an
		// alarm (walbridge SetupRefused), not a silent restart loop.
		cwCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		perr := publishSetup(cwCtx, cfg.Slot, err != nil && refusal(err))
		cancel()
		if perr != nil {
			fmt.Fprintf(stderr, "capture setup: SetupRefused not published to CloudWatch: %v\n", perr)
		}
	}
	return err
}

// publishSetup sends setup's outcome to CloudWatch (capture/cwmetrics).
func publishSetup(ctx context.Context, slotName string, refused bool) error {
	awsCfg, err := sdkbody.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS config: %w", err)
	}
	return cwmetrics.PublishSetup(ctx, cloudwatch.NewFromConfig(awsCfg), slotName, refused, time.Now())
}

func setup(ctx context.Context, cfg config, stdout io.Writer) error {
	keyless := slot.KeylessPolicy(cfg.Keyless)
	switch keyless {
	case slot.KeylessRefuse, slot.KeylessFull, slot.KeylessExclude:
	default:
		return fmt.Errorf("%w: --keyless must be full or exclude, not %q", errUsage, cfg.Keyless)
	}
	pol, err := loadPolicy(cfg)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tables, err := slot.CapturedTables(ctx, conn, cfg.Publication, splitList(cfg.Schemas), splitList(cfg.Tables))
	if err != nil {
		return err
	}
	risky, err := uncovered(ctx, conn, pol, tables)
	if err != nil {
		return err
	}
	printUncovered(stdout, risky)
	if cfg.StrictPolicy && len(risky) > 0 {
		return fmt.Errorf("--strict-policy: %d published columns look sensitive and no policy rule covers them (listed above); add rules to the policy (--policy) or rename the columns", len(risky))
	}
	rep, err := slot.Setup(ctx, conn, slot.SetupOptions{
		Slot: cfg.Slot, Publication: cfg.Publication,
		Schemas: splitList(cfg.Schemas), Tables: splitList(cfg.Tables),
		ReplicaIdentityFull: cfg.IdentityFull, Keyless: keyless, EventTrigger: cfg.EventTrigger,
		Leave:    func(schema, table string) bool { _, skip := pol.Table(schema, table); return skip },
		Failover: cfg.Failover,
	})
	if err != nil {
		return err
	}
	// Only what is missing is created: setup runs before every start on the
	// instance, as a role that may lack CREATE once all is in place.
	installed, err := backfill.Installed(ctx, conn)
	if err != nil {
		return err
	}
	if !installed {
		if err := backfill.Install(ctx, conn); err != nil {
			return err
		}
	}
	shapesExisted, err := shapes.Installed(ctx, conn)
	if err != nil {
		return err
	}
	if !shapesExisted {
		if err := shapes.Install(ctx, conn); err != nil {
			return err
		}
	}
	if installed {
		rep.Notes = append(rep.Notes, "walbridge.backfills exists")
	} else {
		rep.Actions = append(rep.Actions, "created walbridge.backfills (capture backfill)")
	}
	if shapesExisted {
		rep.Notes = append(rep.Notes, "walbridge.schema_shapes exists")
	} else {
		rep.Actions = append(rep.Actions, "created walbridge.schema_shapes (the tables' confirmed shapes, for schema-change events)")
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "ok:  ", n)
	}
	if keyless == slot.KeylessExclude && !cfg.EventTrigger {
		fmt.Fprintln(stdout, "warn: --keyless=exclude makes the publication a list of tables: tables created later are not captured until added to it (--event-trigger adds keyed ones as they are created)")
	}
	for _, a := range rep.Actions {
		fmt.Fprintln(stdout, "done:", a)
	}
	fmt.Fprintln(stdout, "setup complete")
	return nil
}

func cmdTeardown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("teardown", &cfg, stderr, "database-url", "slot", "publication", "yes", "drop-publication", "drop-event-trigger", "drop-schema")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	if !cfg.Yes {
		return fmt.Errorf("%w: teardown drops replication slot %q: changes made while no slot exists are never captured. Re-run with --yes", errUsage, cfg.Slot)
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	done, err := slot.Teardown(ctx, conn, slot.TeardownOptions{Slot: cfg.Slot, Publication: cfg.Publication, DropPublication: cfg.DropPub, DropEventTrigger: cfg.DropTrigger})
	if err != nil {
		return err
	}
	if cfg.DropSchema {
		if err := backfill.Drop(ctx, conn); err != nil {
			return err
		}
		done = append(done, "dropped schema walbridge (backfill state)")
	}
	for _, d := range done {
		fmt.Fprintln(stdout, "done:", d)
	}
	return nil
}

type statusReport struct {
	*slot.Status
	// Policy is the rule that applies to each published column a rule
	// covers, and Sensitive the published columns that look sensitive and
	// that no rule covers.
	Policy    []columnRule       `json:"policy,omitempty"`
	Sensitive []policy.Uncovered `json:"uncoveredSensitiveColumns,omitempty"`
	// Backfills are the slot's backfills, oldest first.
	Backfills []backfillJSON `json:"backfills"`
	Stream    *streamState   `json:"stream,omitempty"`
	// StreamError is set when the stream could not be described.
	StreamError string `json:"streamError,omitempty"`
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("status", &cfg, stderr, "database-url", "stream", "slot", "publication", "json", "no-stream", "policy")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	pol, err := loadPolicy(cfg)
	if err != nil {
		return err
	}
	st, err := slot.ReadStatus(ctx, conn, cfg.Slot, cfg.Publication)
	if err != nil {
		return err
	}
	rep := statusReport{Status: st}
	cols, err := slot.Columns(ctx, conn, st.Tables) // the published tables
	if err != nil {
		return err
	}
	rep.Policy, rep.Sensitive = policyReport(pol, cols), pol.Uncovered(cols)
	bs, err := backfill.List(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	rep.Backfills = backfillsJSON(bs, time.Now())
	if cfg.Stream != "" && !cfg.SkipStreamChk {
		client, err := kinesisClient(ctx)
		if err != nil {
			rep.StreamError = err.Error()
		} else if state, err := describeStream(ctx, client, cfg.Stream); err != nil {
			rep.StreamError = err.Error()
		} else {
			rep.Stream = state
		}
	}
	if cfg.JSON {
		return writeJSON(stdout, rep)
	}
	printStatus(stdout, cfg, rep)
	return nil
}

func printStatus(w io.Writer, cfg config, rep statusReport) {
	st := rep.Status
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SLOT\t%s\n", cfg.Slot)
	if !st.Slot.Exists {
		fmt.Fprintf(tw, "  exists\tno (run capture setup)\n")
	} else {
		active := "no"
		if st.Slot.Active && st.Slot.ActivePID != nil {
			active = fmt.Sprintf("yes (PID %d)", *st.Slot.ActivePID)
		}
		fmt.Fprintf(tw, "  active\t%s\n  confirmed_flush_lsn\t%s\n  restart_lsn\t%s\n  WAL retained\t%s\n  wal_status\t%s\n",
			active, st.Slot.ConfirmedFlushLSN, st.Slot.RestartLSN, humanBytes(st.Slot.WALRetainedBytes), st.Slot.WALStatus)
		if st.Slot.Failover != nil {
			fmt.Fprintf(tw, "  failover\t%v\n", *st.Slot.Failover)
		}
		if st.Slot.Synced != nil && *st.Slot.Synced {
			fmt.Fprintf(tw, "  synced\tyes: a standby's copy of the primary's failover slot\n")
		}
		for _, sb := range st.Slot.StandbySlots {
			state := "a standby streams through it"
			switch {
			case !sb.Exists:
				state = "no such physical slot: logical decoding waits for it"
			case !sb.Active:
				state = "no standby connected: logical decoding waits for it"
			}
			fmt.Fprintf(tw, "  standby slot %s\t%s\n", sb.Name, state)
		}
	}
	fmt.Fprintf(tw, "PUBLICATION\t%s\n", cfg.Publication)
	if !st.PubExists {
		fmt.Fprintf(tw, "  exists\tno (run capture setup)\n")
	}
	fmt.Fprintf(tw, "  TABLE\tREPLICA IDENTITY\tOLD VALUES\n")
	for _, t := range st.Tables {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Name(), identityName(t.Identity), t.OldValues())
	}
	tw.Flush()
	if len(st.Broken) > 0 {
		fmt.Fprintf(w, "\n!!! DANGER: UPDATE and DELETE fail on these published tables (no primary key, no replica identity):\n!!!   %s\n!!! Fix now: ALTER TABLE <t> REPLICA IDENTITY FULL; (or add a primary key), or remove them from the publication.\n",
			strings.Join(st.Broken, ", "))
	}
	if len(st.Incomplete) > 0 {
		fmt.Fprintf(w, "\nnote: oldValues carry key columns only for: %s\n      (capture setup --replica-identity-full gives complete oldValues and exact changedValues)\n", strings.Join(st.Incomplete, ", "))
	}
	if unpublished := minus(st.Keyless, st.Broken); len(unpublished) > 0 {
		fmt.Fprintf(w, "\nnote: tables without a key (not published): %s\n", strings.Join(unpublished, ", "))
	}
	if len(st.Unpublished) > 0 {
		fmt.Fprintf(w, "\nnote: tables the publication leaves out (their changes are not captured): %s\n      (ALTER PUBLICATION %s ADD TABLE <t>; to capture one)\n",
			strings.Join(st.Unpublished, ", "), cfg.Publication)
	}
	switch {
	case rep.Stream != nil:
		fmt.Fprintf(w, "\nSTREAM %s: %s, %d open shards, mode %s, max record %d KiB\n", rep.Stream.Name, rep.Stream.Status, rep.Stream.OpenShards, rep.Stream.Mode, rep.Stream.MaxRecordSizeKiB)
	case rep.StreamError != "":
		fmt.Fprintf(w, "\nSTREAM: %s\n", rep.StreamError)
	}
	if len(rep.Policy) > 0 {
		fmt.Fprintf(w, "\nPOLICY %s\n", cfg.Policy)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range rep.Policy {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Column, r.Action, r.Rule)
		}
		tw.Flush()
	}
	printUncovered(w, rep.Sensitive)
	if len(rep.Backfills) > 0 {
		fmt.Fprintf(w, "\nBACKFILLS\n")
		bs := make([]backfill.Backfill, len(rep.Backfills))
		for i := range rep.Backfills {
			bs[i] = rep.Backfills[i].Backfill
		}
		printBackfills(w, bs, time.Now())
	}
}

// columnRule is one published column a policy rule covers, for status.
type columnRule struct {
	Column string        `json:"column"` // schema.table.column
	Action policy.Action `json:"action"`
	Rule   string        `json:"rule"` // file:line (match: action)
}

func policyReport(p *policy.Policy, cols [][3]string) []columnRule {
	var out []columnRule
	for _, c := range cols {
		name := c[0] + "." + c[1] + "." + c[2]
		if r, ok := p.Table(c[0], c[1]); ok {
			out = append(out, columnRule{Column: name, Action: r.Action, Rule: p.Where(r)})
		} else if r, ok := p.Column(c[0], c[1], c[2]); ok {
			out = append(out, columnRule{Column: name, Action: r.Action, Rule: p.Where(r)})
		}
	}
	return out
}

func minus(a, b []string) []string {
	skip := map[string]bool{}
	for _, s := range b {
		skip[s] = true
	}
	var out []string
	for _, s := range a {
		if !skip[s] {
			out = append(out, s)
		}
	}
	return out
}

func identityName(id string) string {
	return map[string]string{"d": "default", "f": "full", "i": "index", "n": "nothing"}[id]
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// streamState is the part of DescribeStreamSummary status shows.
type streamState struct {
	Name                 string `json:"name"`
	Status               string `json:"status"`
	Mode                 string `json:"mode"`
	OpenShards           int32  `json:"openShards"`
	MaxRecordSizeKiB     int32  `json:"maxRecordSizeKiB"`
	RetentionPeriodHours int32  `json:"retentionPeriodHours"`
}

func describeStream(ctx context.Context, client *kinesis.Client, stream string) (*streamState, error) {
	in := &kinesis.DescribeStreamSummaryInput{}
	if strings.HasPrefix(stream, "arn:") {
		in.StreamARN = &stream
	} else {
		in.StreamName = &stream
	}
	out, err := client.DescribeStreamSummary(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("describe stream %s: %w", stream, err)
	}
	d := out.StreamDescriptionSummary
	st := &streamState{Name: aws.ToString(d.StreamName), Status: string(d.StreamStatus), Mode: "PROVISIONED", MaxRecordSizeKiB: 1024,
		OpenShards: aws.ToInt32(d.OpenShardCount), RetentionPeriodHours: aws.ToInt32(d.RetentionPeriodHours)}
	if d.StreamModeDetails != nil {
		st.Mode = string(d.StreamModeDetails.StreamMode)
	}
	if d.MaxRecordSizeInKiB != nil {
		st.MaxRecordSizeKiB = *d.MaxRecordSizeInKiB
	}
	return st, nil
}

func kinesisClient(ctx context.Context) (*kinesis.Client, error) {
	awsCfg, err := sdkbody.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return kinesis.NewFromConfig(awsCfg), nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("run", &cfg, stderr, "database-url", "stream", "slot", "publication", "metrics-addr", "log-level", "drain-timeout", "status-interval", "max-in-flight", "buffer-bytes", "cloudwatch", "policy", "publish-schema-changes", "record-format", "record-compression", "claim-check-bucket", "claim-check-bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.requireDatabase(); err != nil {
		return err
	}
	if err := cfg.requireStream(); err != nil {
		return err
	}
	if err := cfg.checkRecordFormat(); err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	defer log.Sync()
	live, stopPolicy, err := livePolicy(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopPolicy()
	warnUncovered(ctx, cfg, live.Policy(), log)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// capture's working set is bounded by --buffer-bytes; a soft limit
		// keeps the garbage collector from letting the heap double past it
		// on a small instance. GOMEMLIMIT overrides.
		debug.SetMemoryLimit(int64(64<<20 + 2*cfg.BufferBytes))
	}
	reg := metrics.New()
	if cfg.MetricsAddr != "" {
		reg.AddRuntime() // process_* and go_* beside walbridge's series
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	awsCfg, err := sdkbody.LoadDefaultConfig(ctx, logging.AWSOptions(log)...)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	if err := checkAWS(ctx, awsCfg); err != nil {
		return err
	}
	client := kinesis.NewFromConfig(awsCfg)
	if cfg.CloudWatch {
		pub := cwmetrics.New(cloudwatch.NewFromConfig(awsCfg), reg, cfg.Slot, log)
		cwCtx, stopCW := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); pub.Run(cwCtx, time.Minute) }()
		defer func() { stopCW(); <-done }()
	}
	var claim *claimcheck.Store
	if cfg.ClaimCheckBucket != "" {
		claim = claimcheck.New(claimcheck.Client(awsCfg), cfg.ClaimCheckBucket)
		retries := reg.Counter("walbridge_claim_check_retries_total", "Failed puts of claim-check values to S3, each retried: while they fail, reading waits.").With()
		claim.OnRetry = func(attempt int, err error) {
			retries.Inc()
			log.Warn("claim check: S3 put failed; retrying (nothing after this change is confirmed until it succeeds)",
				zap.String("bucket", cfg.ClaimCheckBucket), zap.Int("attempt", attempt), zap.Error(err))
		}
		log.Info("claim check on", zap.String("bucket", cfg.ClaimCheckBucket), zap.Int("threshold_bytes", cfg.ClaimCheckBytes))
	}
	// The writer outlives ctx: on shutdown it must still drain.
	w, err := putrecords.NewWriter(context.WithoutCancel(ctx), client, putrecords.Config{
		Stream: cfg.Stream, Metrics: reg, Logger: log, Concurrency: cfg.MaxInFlight, BufferBytes: cfg.BufferBytes,
		Format: cfg.RecordFormat, Uncompressed: cfg.RecordCompression == "none",
		ClaimCheck: claim, ClaimCheckBytes: cfg.ClaimCheckBytes,
	})
	if err != nil {
		return err
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = w.Check(checkCtx)
	cancel()
	if err != nil {
		w.Close(context.Background())
		if ctx.Err() != nil {
			return nil // asked to stop while starting: nothing was read, nothing to drain
		}
		return err
	}
	coord := backfill.NewCoordinator()
	var known *shapes.Store // loaded by the stream's first session
	if cfg.SchemaChanges {
		known = shapes.New(cfg.Slot, log)
	}
	stream := replication.NewStream(replication.StreamConfig{
		DatabaseURL: cfg.DatabaseURL, Slot: cfg.Slot, Publication: cfg.Publication,
		StatusInterval: cfg.StatusEvery, DrainTimeout: cfg.DrainTimeout, Logger: log, Metrics: reg, Policy: live,
		Interleaver: coord, Shapes: known,
	}, w)
	// Backfills run beside the stream, on a connection of their own; they
	// stop with ctx, before the stream drains.
	worker := backfill.NewWorker(backfill.WorkerConfig{
		DatabaseURL: cfg.DatabaseURL, Slot: cfg.Slot, Publication: cfg.Publication,
		Coordinator: coord, Sink: w, Policy: live, Logger: log, Metrics: reg,
	})
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); worker.Run(workerCtx) }()
	log.Info("capture starting", zap.String("stream", cfg.Stream), zap.String("slot", cfg.Slot), zap.String("publication", cfg.Publication))
	runErr := stream.Run(ctx)
	stopWorker()
	<-workerDone
	// Run drains the writer itself on a clean shutdown; closing again is a
	// no-op then, and the only drain on the error path.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancelDrain()
	if err := w.Close(drainCtx); err != nil && runErr == nil {
		runErr = fmt.Errorf("drain: %w", err)
	}
	return runErr
}

var (
	errNoRegion      = errors.New("no AWS region configured")
	errNoCredentials = errors.New("no AWS credentials found")
)

// checkAWS fails fast, in one line, on what the SDK would otherwise retry
// through (and log) request after request: no region, no credentials.
func checkAWS(ctx context.Context, awsCfg aws.Config) error {
	if awsCfg.Region == "" {
		return errNoRegion
	}
	if awsCfg.Credentials == nil {
		return errNoCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("%w (the SDK's default chain: environment, shared config, SSO, container and EC2 instance roles): %v", errNoCredentials, err)
	}
	return nil
}

func serveMetrics(addr string, reg *metrics.Registry, log *zap.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	if os.Getenv("WALBRIDGE_PPROF") == "1" {
		// Profiling on the metrics address, opt-in: it exposes internals.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
