package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/walbridge/walbridge/capture/putrecords"
	"github.com/walbridge/walbridge/shared/claimcheck"
)

// config is every setting of every command. Each has a flag and an
// environment variable; the flag wins. One loader for all commands keeps the
// names and defaults in one place (README's configuration table lists them).
type config struct {
	DatabaseURL   string
	Stream        string
	Slot          string
	Publication   string
	MetricsAddr   string
	LogLevel      string
	DrainTimeout  time.Duration
	StatusEvery   time.Duration
	MaxInFlight   int
	BufferBytes   int
	Schemas       string
	Tables        string
	IdentityFull  bool
	Keyless       string
	EventTrigger  bool
	JSON          bool
	Yes           bool
	DropPub       bool
	DropTrigger   bool
	DropSchema    bool
	SkipStreamChk bool
	CloudWatch    bool
	// SchemaChanges: run writes a schema-change record when a table's
	// shape changes (on unless WALBRIDGE_PUBLISH_SCHEMA_CHANGES=false).
	SchemaChanges bool
	Policy        string
	StrictPolicy  bool
	Failover      bool
	// RecordFormat and RecordCompression: how run writes change records.
	RecordFormat      string
	RecordCompression string
	// ClaimCheckBucket and ClaimCheckBytes: run keeps values over
	// ClaimCheckBytes (and the largest of a change too large for a record)
	// in this bucket, a reference in their place.
	ClaimCheckBucket string
	ClaimCheckBytes  int
}

// newFlagSet declares the flags a command accepts, with env-var defaults.
func newFlagSet(cmd string, cfg *config, stderr io.Writer, names ...string) *flag.FlagSet {
	fs := flag.NewFlagSet("capture "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	envBool := func(name string) bool {
		v := strings.ToLower(os.Getenv(name))
		return v == "1" || v == "true" || v == "yes"
	}
	envDur := func(name string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
			return d
		}
		return def
	}
	envInt := func(name string, def int) int {
		var n int
		if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil {
			return n
		}
		return def
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	str := func(p *string, name, envName, def, usage string) {
		if want[name] {
			fs.StringVar(p, name, env(envName, def), usage+" (env "+envName+")")
		}
	}
	str(&cfg.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL connection URL")
	str(&cfg.Stream, "stream", "WALBRIDGE_STREAM", "", "Kinesis stream name or ARN")
	str(&cfg.Slot, "slot", "WALBRIDGE_SLOT", "walbridge", "logical replication slot")
	str(&cfg.Publication, "publication", "WALBRIDGE_PUBLICATION", "walbridge", "publication")
	str(&cfg.MetricsAddr, "metrics-addr", "WALBRIDGE_METRICS_ADDR", "", "address for the Prometheus /metrics endpoint, e.g. 127.0.0.1:9187 (empty: off)")
	str(&cfg.LogLevel, "log-level", "WALBRIDGE_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&cfg.Schemas, "schemas", "WALBRIDGE_SCHEMAS", "", "comma-separated schemas to publish (default: all tables)")
	str(&cfg.Tables, "tables", "WALBRIDGE_TABLES", "", "comma-separated tables (schema.table) to publish (default: all tables)")
	str(&cfg.Keyless, "keyless", "WALBRIDGE_KEYLESS", "", "tables without a key: full (REPLICA IDENTITY FULL) or exclude")
	str(&cfg.RecordFormat, "record-format", "WALBRIDGE_RECORD_FORMAT", "v1", "run: change record format: v1 (one row per Kinesis record) or v2 (the rows of one shard per record; fanout's ParallelizationFactor must be 1)")
	str(&cfg.RecordCompression, "record-compression", "WALBRIDGE_RECORD_COMPRESSION", "zstd", "run: v2 records compressed with zstd or none")
	str(&cfg.ClaimCheckBucket, "claim-check-bucket", "WALBRIDGE_CLAIM_CHECK_BUCKET", "", "run: S3 bucket for values too large to travel in a record (the claim check); empty: such values are omitted")
	if want["claim-check-bytes"] {
		fs.IntVar(&cfg.ClaimCheckBytes, "claim-check-bytes", envInt("WALBRIDGE_CLAIM_CHECK_BYTES", claimcheck.DefaultThreshold), "run: with a claim-check bucket, values larger than this go to S3 (env WALBRIDGE_CLAIM_CHECK_BYTES)")
	}
	str(&cfg.Policy, "policy", "WALBRIDGE_POLICY", "", "column policy file (YAML): columns to exclude, hash or redact, tables to skip; hash rules need WALBRIDGE_HASH_KEY")
	if want["drain-timeout"] {
		fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", envDur("WALBRIDGE_DRAIN_TIMEOUT", 20*time.Second), "bound on draining in-flight records at shutdown (env WALBRIDGE_DRAIN_TIMEOUT)")
	}
	if want["status-interval"] {
		fs.DurationVar(&cfg.StatusEvery, "status-interval", envDur("WALBRIDGE_STATUS_INTERVAL", time.Second), "how often the confirmed LSN is reported to PostgreSQL, at most 10s (env WALBRIDGE_STATUS_INTERVAL)")
	}
	if want["max-in-flight"] {
		fs.IntVar(&cfg.MaxInFlight, "max-in-flight", envInt("WALBRIDGE_MAX_IN_FLIGHT", 8), "concurrent PutRecords requests (env WALBRIDGE_MAX_IN_FLIGHT)")
	}
	if want["buffer-bytes"] {
		fs.IntVar(&cfg.BufferBytes, "buffer-bytes", envInt("WALBRIDGE_BUFFER_BYTES", 8<<20), "bytes of changes queued or in flight before reading pauses (env WALBRIDGE_BUFFER_BYTES)")
	}
	boolean := func(p *bool, name, envName, usage string) {
		if want[name] {
			fs.BoolVar(p, name, envBool(envName), usage+" (env "+envName+")")
		}
	}
	boolean(&cfg.IdentityFull, "replica-identity-full", "WALBRIDGE_REPLICA_IDENTITY_FULL", "set REPLICA IDENTITY FULL on captured tables that lack it (complete oldValues)")
	boolean(&cfg.EventTrigger, "event-trigger", "WALBRIDGE_EVENT_TRIGGER", "install a DDL event trigger applying the keyless policy to tables created later")
	boolean(&cfg.CloudWatch, "cloudwatch", "WALBRIDGE_CLOUDWATCH", "run: publish the alarm metrics to CloudWatch (namespace walbridge) every minute")
	if want["publish-schema-changes"] {
		v := strings.ToLower(os.Getenv("WALBRIDGE_PUBLISH_SCHEMA_CHANGES"))
		fs.BoolVar(&cfg.SchemaChanges, "publish-schema-changes", v != "false" && v != "0" && v != "no",
			"run: write a schema-change record when a table's columns change (fanout publishes it as a DatabaseSchemaChange event) (env WALBRIDGE_PUBLISH_SCHEMA_CHANGES, default true)")
	}
	boolean(&cfg.SkipStreamChk, "no-stream", "WALBRIDGE_NO_STREAM", "status: don't query Kinesis")
	boolean(&cfg.Failover, "failover", "WALBRIDGE_FAILOVER", "setup: create a failover slot (PostgreSQL 17+) that standbys with sync_replication_slots keep, so capture resumes on a promoted standby")
	boolean(&cfg.StrictPolicy, "strict-policy", "WALBRIDGE_STRICT_POLICY", "setup: refuse while published columns that look sensitive are covered by no policy rule")
	if want["json"] {
		fs.BoolVar(&cfg.JSON, "json", false, "print JSON instead of a table")
	}
	if want["yes"] {
		fs.BoolVar(&cfg.Yes, "yes", false, "really do it")
	}
	if want["drop-publication"] {
		fs.BoolVar(&cfg.DropPub, "drop-publication", false, "also drop the publication")
	}
	if want["drop-schema"] {
		fs.BoolVar(&cfg.DropSchema, "drop-schema", false, "also drop the walbridge schema: backfill state and the event trigger's function")
	}
	if want["drop-event-trigger"] {
		fs.BoolVar(&cfg.DropTrigger, "drop-event-trigger", false, "also drop the walbridge_new_tables event trigger")
	}
	return fs
}

// errUsage is returned for bad command lines (exit status 2).
var errUsage = errors.New("usage")

func (c *config) requireDatabase() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("%w: DATABASE_URL (or --database-url) is required, e.g. postgres://user:pass@host:5432/app", errUsage)
	}
	return nil
}

func (c *config) requireStream() error {
	if c.Stream == "" {
		return fmt.Errorf("%w: WALBRIDGE_STREAM (or --stream) is required: the Kinesis stream name or ARN", errUsage)
	}
	return nil
}

func (c *config) checkRecordFormat() error {
	switch {
	case c.RecordFormat != putrecords.FormatV1 && c.RecordFormat != putrecords.FormatV2:
		return fmt.Errorf("%w: WALBRIDGE_RECORD_FORMAT (--record-format) %q: want v1 or v2", errUsage, c.RecordFormat)
	case c.RecordCompression != "zstd" && c.RecordCompression != "none":
		return fmt.Errorf("%w: WALBRIDGE_RECORD_COMPRESSION (--record-compression) %q: want zstd or none", errUsage, c.RecordCompression)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
