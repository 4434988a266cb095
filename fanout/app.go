package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/fanout/poll"
	"github.com/walbridge/walbridge/fanout/publish"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

// app is fanout wired up: configuration, logger, AWS configuration and the
// handler with its publisher.
type app struct {
	cfg     config
	log     *zap.Logger
	aws     aws.Config
	reg     *metrics.Registry
	handler *Handler
}

// newApp reads the configuration and builds the handler. Events go to
// EventBridge, or, when stdout is not nil, are printed there as EventBridge
// would deliver them.
func newApp(ctx context.Context, getenv func(string) string, stdout io.Writer) (*app, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg.LogLevel)
	// The SDK's default HTTP client, so that AWS_CA_BUNDLE and the proxy
	// settings keep working.
	awsCfg, err := sdkbody.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	var api publish.API
	if stdout != nil {
		api = newStdoutAPI(stdout, awsCfg.Region, getenv("AWS_ACCOUNT_ID"))
	} else {
		// The publisher owns retries (it knows the invocation's deadline and
		// each entry's fate); the SDK's own would retry blindly inside it.
		api = eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	}
	pcfg := publish.Config{EventBus: cfg.EventBus, MaxRequestBytes: cfg.MaxEventBytes, Concurrency: cfg.Concurrency, Logger: log}
	if cfg.ClaimCheckBucket != "" {
		pcfg.ClaimCheck = claimcheck.New(claimcheck.Client(awsCfg), cfg.ClaimCheckBucket)
		pcfg.ClaimCheck.OnRetry = func(attempt int, err error) {
			log.Warn("claim check: S3 put failed; retrying", zap.String("bucket", cfg.ClaimCheckBucket), zap.Int("attempt", attempt), zap.Error(err))
		}
	}
	pub := publish.New(api, pcfg)
	if cfg.Ordered && stdout == nil {
		ob, err := orderedbus.New(awsCfg, cfg.EventBus)
		if err != nil {
			return nil, err
		}
		pub = publish.NewOrdered(ob, pcfg)
	}
	reg := metrics.New()
	return &app{cfg: cfg, log: log, aws: awsCfg, reg: reg, handler: newHandler(pub, cfg, log, reg).withRanges(newShardRanges(kinesis.NewFromConfig(awsCfg)))}, nil
}

const usage = `usage: fanout poll [flags]

In AWS Lambda (AWS_LAMBDA_RUNTIME_API set) fanout serves the Kinesis event
source mapping. Elsewhere:

  fanout poll   read every shard of the stream and publish its change records
                the way the Lambda event source mapping would (see -h)

Configuration is read from the environment: WALBRIDGE_EVENT_BUS,
WALBRIDGE_SOURCE, WALBRIDGE_DETAIL_TYPE, WALBRIDGE_RESOURCE,
WALBRIDGE_MAX_EVENT_BYTES, WALBRIDGE_PUBLISH_MESSAGES, WALBRIDGE_PUBLISH_SCHEMA_CHANGES,
WALBRIDGE_PUBLISH_CONCURRENCY, WALBRIDGE_BUS_KIND, WALBRIDGE_STREAM,
WALBRIDGE_CLAIM_CHECK_BUCKET,
WALBRIDGE_LOG_LEVEL, and the
AWS SDK's standard variables (AWS_REGION, AWS_ENDPOINT_URL_KINESIS,
AWS_ENDPOINT_URL_EVENTBRIDGE, ...).
`

// command runs a subcommand and returns the exit status.
func command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "poll" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	opts, err := parsePollFlags(args[1:], getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "fanout poll:", err)
		return 2
	}
	var out io.Writer
	if opts.stdout {
		out = stdout
	}
	a, err := newApp(ctx, getenv, out)
	if err != nil {
		fmt.Fprintln(stderr, "fanout:", err)
		return 1
	}
	defer a.log.Sync()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	handle := func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, string, error) {
		o := a.handler.Process(ctx, ev)
		return o.KinesisEventResponse, o.Reason, nil
	}
	a.log.Info("fanout poll", zap.Bool("stdout", opts.stdout))
	if err := poll.Run(ctx, kinesis.NewFromConfig(a.aws), a.aws.Region, handle, opts.Options, a.log); err != nil {
		a.log.Error("poll stopped", zap.Error(err))
		return 1
	}
	return 0
}

// pollOptions are the flags of "fanout poll".
type pollOptions struct {
	poll.Options
	stdout bool
}

func parsePollFlags(args []string, getenv func(string) string, stderr io.Writer) (pollOptions, error) {
	fs := flag.NewFlagSet("fanout poll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := pollOptions{}
	fs.StringVar(&o.Stream, "stream", getenv("WALBRIDGE_STREAM"), "Kinesis stream name or ARN (default $WALBRIDGE_STREAM)")
	fs.StringVar(&o.From, "from", "trim-horizon", "where a shard without a checkpoint starts: trim-horizon, latest or an RFC 3339 time")
	fs.StringVar(&o.Checkpoint, "checkpoint", "", "file keeping each shard's last fully processed sequence number; resumes after it")
	fs.IntVar(&o.BatchSize, "batch-size", 100, "records per handler invocation (1 to 10000)")
	fs.BoolVar(&o.stdout, "stdout", false, "print each event as EventBridge would deliver it instead of calling PutEvents")
	fs.StringVar(&o.OnFailure, "on-failure", "fanout-failures.jsonl", "file that records (as JSON lines, without data) the records skipped after -max-retries")
	fs.IntVar(&o.MaxRetries, "max-retries", 5, "retries of a failing record before it is skipped to -on-failure")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute, "deadline of one handler invocation, like the Lambda function timeout")
	fs.DurationVar(&o.PollInterval, "poll-interval", time.Second, "wait between empty reads of a shard")
	fs.BoolVar(&o.IdleExit, "idle-exit", false, "exit once every shard is read to its end (for replays and tests)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.Stream == "":
		return o, errors.New("no stream: give -stream or set WALBRIDGE_STREAM")
	case o.BatchSize < 1 || o.BatchSize > 10000:
		return o, fmt.Errorf("-batch-size %d: want 1 to 10000", o.BatchSize)
	case o.MaxRetries < 0:
		return o, fmt.Errorf("-max-retries %d: want 0 or more", o.MaxRetries)
	}
	if _, err := poll.ParseStart(o.From); err != nil {
		return o, err
	}
	return o, nil
}
