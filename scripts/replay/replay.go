package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/walbridge/walbridge/shared/sdkbody"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2 // called wrongly, or refused
)

// options are replay's flags.
type options struct {
	function, source string
	from             time.Time // zero with trimHorizon
	trimHorizon      bool
	dryRun, yes      bool
	timeout          time.Duration // per wait
	pollInterval     time.Duration
	// parallelization is the new mapping's ParallelizationFactor: 1 unless
	// asked, whatever the old one had (see parseArgs).
	parallelization int
}

func parseArgs(args []string, stderr io.Writer, now time.Time) (options, error) {
	var o options
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.function, "function", "", "the function whose mapping is replaced (name, ARN, or name:alias)")
	fs.StringVar(&o.source, "stream", "", "the mapping's event source ARN: the Kinesis stream (or its enhanced fan-out consumer)")
	from := fs.String("from", "", "start the new mapping at this time (RFC 3339, e.g. 2026-11-20T10:00:00Z)")
	fs.BoolVar(&o.trimHorizon, "trim-horizon", false, "start the new mapping at the oldest record in the stream")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.BoolVar(&o.yes, "yes", false, "carry the plan out")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for each state change")
	fs.DurationVar(&o.pollInterval, "poll-interval", 2*time.Second, "time between GetEventSourceMapping calls while waiting")
	// A stream may hold version 2 records (many rows under one partition
	// key), which are in order per row only when a shard's batches run one
	// at a time. The stack refuses v2 with another factor; replay must not
	// bring one back by copying an old mapping.
	fs.IntVar(&o.parallelization, "parallelization-factor", 1, "the new mapping's ParallelizationFactor; more than 1 only if the stream holds RecordFormat v1 records alone")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.function == "" || o.source == "":
		return o, errors.New("--function and --stream are required")
	case (*from == "") == !o.trimHorizon:
		return o, errors.New("give exactly one of --from TIME and --trim-horizon")
	case o.timeout <= 0 || o.pollInterval <= 0:
		return o, errors.New("--timeout and --poll-interval must be positive")
	case o.parallelization < 1 || o.parallelization > 10:
		return o, fmt.Errorf("--parallelization-factor %d: want 1 to 10", o.parallelization)
	}
	if *from != "" {
		t, err := time.Parse(time.RFC3339Nano, *from)
		if err != nil {
			return o, fmt.Errorf("--from %q: want an RFC 3339 time such as 2026-11-20T10:00:00Z", *from)
		}
		if t.After(now) {
			return o, fmt.Errorf("--from %s is in the future: there is nothing to replay", t.Format(time.RFC3339))
		}
		o.from = t.UTC()
	}
	return o, nil
}

// run is the whole command behind main. load adds SDK config options (the
// tests' HTTP client); the standard chain provides the rest.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, load ...func(*config.LoadOptions) error) int {
	o, err := parseArgs(args, stderr, time.Now())
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "replay: %v\n", err)
		}
		return exitUsage
	}
	if !o.dryRun && !o.yes {
		fmt.Fprintln(stderr, "replay: refusing to replace the event source mapping without --yes; run with --dry-run to see the plan first")
		return exitUsage
	}
	cfg, err := sdkbody.LoadDefaultConfig(ctx, load...)
	if err != nil {
		fmt.Fprintf(stderr, "replay: AWS config: %v\n", err)
		return exitError
	}
	r := &replayer{api: lambda.NewFromConfig(cfg), out: stdout, warn: stderr, pollInterval: o.pollInterval, timeout: o.timeout}
	if err := r.replay(ctx, o); err != nil {
		fmt.Fprintf(stderr, "replay: %v\n", err)
		return exitError
	}
	return exitOK
}

// mappingAPI is the part of the Lambda client replay uses.
type mappingAPI interface {
	lambda.ListEventSourceMappingsAPIClient
	GetEventSourceMapping(context.Context, *lambda.GetEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.GetEventSourceMappingOutput, error)
	CreateEventSourceMapping(context.Context, *lambda.CreateEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.CreateEventSourceMappingOutput, error)
	UpdateEventSourceMapping(context.Context, *lambda.UpdateEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.UpdateEventSourceMappingOutput, error)
	DeleteEventSourceMapping(context.Context, *lambda.DeleteEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.DeleteEventSourceMappingOutput, error)
}

// replayer carries out a replay: out gets the plan and progress, warn the
// warnings and errors.
type replayer struct {
	api          mappingAPI
	out, warn    io.Writer
	pollInterval time.Duration
	timeout      time.Duration
}

// The states of an event source mapping that replay waits for.
const (
	stateEnabled  = "Enabled"
	stateDisabled = "Disabled"
)

// plan is what replay will do to one mapping.
type plan struct {
	old     types.EventSourceMappingConfiguration
	disable bool // the old mapping is enabled and must be disabled first
	create  *lambda.CreateEventSourceMappingInput
}

// replay finds the mapping, prints the plan and the warnings, and unless
// this is a dry run carries the plan out.
func (r *replayer) replay(ctx context.Context, o options) error {
	old, err := r.findMapping(ctx, o.function, o.source)
	if err != nil {
		return err
	}
	p, err := newPlan(old, o.from, o.trimHorizon, int32(o.parallelization))
	if err != nil {
		return err
	}
	if was := aws.ToInt32(old.ParallelizationFactor); was != int32(o.parallelization) {
		fmt.Fprintf(r.warn, "note: the new mapping has ParallelizationFactor %d (the old one had %d): version 2 change records are in order per row only at 1\n", o.parallelization, was)
	}
	p.print(r.out)
	r.warnings(p)
	if o.dryRun {
		fmt.Fprintln(r.out, "dry run: nothing was changed")
		return nil
	}
	return r.execute(ctx, p)
}

// findMapping returns the one mapping of function on source.
func (r *replayer) findMapping(ctx context.Context, function, source string) (types.EventSourceMappingConfiguration, error) {
	var found []types.EventSourceMappingConfiguration
	pages := lambda.NewListEventSourceMappingsPaginator(r.api, &lambda.ListEventSourceMappingsInput{
		FunctionName: aws.String(function), EventSourceArn: aws.String(source),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return types.EventSourceMappingConfiguration{}, fmt.Errorf("list event source mappings of %s on %s: %w", function, source, err)
		}
		found = append(found, page.EventSourceMappings...)
	}
	switch len(found) {
	case 0:
		return types.EventSourceMappingConfiguration{}, fmt.Errorf("%s has no event source mapping on %s", function, source)
	case 1:
		return found[0], nil
	}
	var b strings.Builder
	for _, m := range found {
		fmt.Fprintf(&b, "\n  %s %s (%s)", aws.ToString(m.UUID), aws.ToString(m.FunctionArn), aws.ToString(m.State))
	}
	return types.EventSourceMappingConfiguration{}, fmt.Errorf("%s has %d event source mappings on %s; name the one to replace with a qualified --function (name:alias or its ARN):%s",
		function, len(found), source, b.String())
}

// newPlan checks that old can be replaced and builds the new mapping from
// its settings, starting at from (or at the trim horizon).
func newPlan(old types.EventSourceMappingConfiguration, from time.Time, trimHorizon bool, parallelization int32) (plan, error) {
	uuid, state := aws.ToString(old.UUID), aws.ToString(old.State)
	if state != stateEnabled && state != stateDisabled {
		return plan{}, fmt.Errorf("mapping %s is %s; run replay again once it is Enabled or Disabled", uuid, state)
	}
	if old.FilterCriteriaError != nil {
		return plan{}, fmt.Errorf("mapping %s: its filter criteria can't be read (%s: %s), and replay would drop them",
			uuid, aws.ToString(old.FilterCriteriaError.ErrorCode), aws.ToString(old.FilterCriteriaError.Message))
	}
	in := &lambda.CreateEventSourceMappingInput{
		FunctionName:                   old.FunctionArn,
		EventSourceArn:                 old.EventSourceArn,
		Enabled:                        aws.Bool(state == stateEnabled),
		BatchSize:                      old.BatchSize,
		MaximumBatchingWindowInSeconds: old.MaximumBatchingWindowInSeconds,
		ParallelizationFactor:          aws.Int32(parallelization),
		MaximumRetryAttempts:           old.MaximumRetryAttempts,
		MaximumRecordAgeInSeconds:      old.MaximumRecordAgeInSeconds,
		BisectBatchOnFunctionError:     old.BisectBatchOnFunctionError,
		FunctionResponseTypes:          old.FunctionResponseTypes,
		TumblingWindowInSeconds:        old.TumblingWindowInSeconds,
		FilterCriteria:                 old.FilterCriteria,
		KMSKeyArn:                      old.KMSKeyArn,
		MetricsConfig:                  old.MetricsConfig,
		LoggingConfig:                  old.LoggingConfig,
		ProvisionedPollerConfig:        old.ProvisionedPollerConfig,
	}
	// Lambda reports an empty OnFailure for a mapping without one, and
	// OnSuccess is not accepted for event source mappings.
	if dc := old.DestinationConfig; dc != nil && dc.OnFailure != nil && aws.ToString(dc.OnFailure.Destination) != "" {
		in.DestinationConfig = &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: dc.OnFailure.Destination}}
	}
	if trimHorizon {
		in.StartingPosition = types.EventSourcePositionTrimHorizon
	} else {
		in.StartingPosition = types.EventSourcePositionAtTimestamp
		in.StartingPositionTimestamp = aws.Time(from)
	}
	return plan{old: old, disable: state == stateEnabled, create: in}, nil
}

// start describes where the new mapping starts.
func (p plan) start() string {
	if p.create.StartingPosition == types.EventSourcePositionTrimHorizon {
		return "TRIM_HORIZON (the oldest record the stream still holds)"
	}
	return "AT_TIMESTAMP " + p.create.StartingPositionTimestamp.Format(time.RFC3339Nano)
}

func (p plan) newState() string {
	if aws.ToBool(p.create.Enabled) {
		return stateEnabled
	}
	return stateDisabled
}

// print writes the plan: every call replay will make, in order.
func (p plan) print(w io.Writer) {
	uuid := aws.ToString(p.old.UUID)
	fmt.Fprintf(w, "event source mapping %s: %s on %s, %s\n", uuid, aws.ToString(p.old.FunctionArn), aws.ToString(p.old.EventSourceArn), aws.ToString(p.old.State))
	fmt.Fprintf(w, "plan: replace it with a mapping with the same settings that starts at %s\n", p.start())
	step := 1
	if p.disable {
		fmt.Fprintf(w, "  %d. UpdateEventSourceMapping UUID=%s Enabled=false, then GetEventSourceMapping until State=%s\n", step, uuid, stateDisabled)
		step++
	} else {
		fmt.Fprintln(w, "  (the mapping is already Disabled: no need to disable it)")
	}
	fmt.Fprintf(w, "  %d. DeleteEventSourceMapping UUID=%s, then GetEventSourceMapping until it is gone\n", step, uuid)
	step++
	fmt.Fprintf(w, "  %d. CreateEventSourceMapping, then GetEventSourceMapping until State=%s; the request, as aws lambda create-event-source-mapping --cli-input-json takes it:\n", step, p.newState())
	fmt.Fprintf(w, "     %s\n", cliJSON(p.create))
	if !p.disable {
		fmt.Fprintln(w, "  The new mapping is created Disabled, like the old one; enable it with aws lambda update-event-source-mapping --enabled --uuid <new UUID>.")
	}
}

// warnings tells what a replay does to consumers and to delivery.
func (r *replayer) warnings(p plan) {
	w := r.warn
	fmt.Fprintf(w, "WARNING: fanout publishes every change in the stream from %s again: consumers will see duplicates and must drop them by detail.lsn + detail.seq.\n", p.start())
	fmt.Fprintln(w, "WARNING: from the moment the old mapping is disabled until the new one is enabled, nothing publishes: new changes wait in the stream (Lambda allows one mapping per function and stream, so the new one can only be created once the old one is gone).")
	if p.create.StartingPosition == types.EventSourcePositionAtTimestamp {
		fmt.Fprintln(w, "WARNING: records older than --from that the old mapping has not processed yet (see its IteratorAge) will not be delivered by the new one.")
	}
	fmt.Fprintln(w, "NOTE: if the mapping belongs to a CloudFormation stack (infra/template.yaml's FanoutEventSourceMapping), the stack still names the old, deleted UUID (drift); tags of the old mapping are not copied.")
}

// execute carries the plan out, step by step, each step waited for. An
// error says what state things were left in and how to finish by hand.
func (r *replayer) execute(ctx context.Context, p plan) error {
	uuid := aws.ToString(p.old.UUID)
	recreate := fmt.Sprintf("create the new mapping with: aws lambda create-event-source-mapping --cli-input-json '%s'", cliJSON(p.create))
	if p.disable {
		fmt.Fprintf(r.out, "disabling %s\n", uuid)
		if _, err := r.api.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: p.old.UUID, Enabled: aws.Bool(false)}); err != nil {
			return fmt.Errorf("disable %s: %w (nothing was changed)", uuid, err)
		}
		if err := r.waitState(ctx, uuid, stateDisabled); err != nil {
			return fmt.Errorf("%w; the old mapping stays as it is now: enable it again with aws lambda update-event-source-mapping --enabled --uuid %s, or run replay again once it is Disabled", err, uuid)
		}
	}
	fmt.Fprintf(r.out, "deleting %s\n", uuid)
	if _, err := r.api.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: p.old.UUID}); err != nil {
		return fmt.Errorf("delete %s: %w; nothing reads the stream now: delete it, then %s", uuid, err, recreate)
	}
	if err := r.waitGone(ctx, uuid); err != nil {
		return fmt.Errorf("%w; nothing reads the stream now: once it is gone, %s", err, recreate)
	}
	fmt.Fprintf(r.out, "creating the new mapping at %s\n", p.start())
	created, err := r.create(ctx, p.create)
	if err != nil {
		return fmt.Errorf("create the new mapping: %w; nothing reads the stream now: %s", err, recreate)
	}
	newUUID := aws.ToString(created.UUID)
	if err := r.waitState(ctx, newUUID, p.newState()); err != nil {
		return fmt.Errorf("%w; the new mapping %s exists: check it with aws lambda get-event-source-mapping --uuid %s", err, newUUID, newUUID)
	}
	fmt.Fprintf(r.out, "done: %s replaced %s and is %s from %s\n", newUUID, uuid, p.newState(), p.start())
	return nil
}

// create creates the new mapping. A ResourceConflictException means Lambda
// still counts the old mapping, although reads no longer find it: create
// tries again until the timeout.
func (r *replayer) create(ctx context.Context, in *lambda.CreateEventSourceMappingInput) (*lambda.CreateEventSourceMappingOutput, error) {
	var created *lambda.CreateEventSourceMappingOutput
	var conflict error
	err := r.poll(ctx, func() (bool, error) {
		out, err := r.api.CreateEventSourceMapping(ctx, in)
		if errors.As(err, new(*types.ResourceConflictException)) {
			conflict = err
			return false, nil
		}
		created = out
		return err == nil, err
	})
	if err != nil && conflict != nil {
		err = fmt.Errorf("%w (until then: %v)", err, conflict)
	}
	return created, err
}

// waitState polls the mapping until its State is want.
func (r *replayer) waitState(ctx context.Context, uuid, want string) error {
	var last *lambda.GetEventSourceMappingOutput
	err := r.poll(ctx, func() (bool, error) {
		out, err := r.api.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(uuid)})
		if err != nil {
			return false, err
		}
		last = out
		return aws.ToString(out.State) == want, nil
	})
	if err != nil {
		state := "unknown"
		if last != nil {
			state = aws.ToString(last.State)
			if reason := aws.ToString(last.StateTransitionReason); reason != "" {
				state += " (" + reason + ")"
			}
		}
		return fmt.Errorf("wait for %s to be %s (last seen %s): %w", uuid, want, state, err)
	}
	return nil
}

// waitGone polls the mapping until Lambda no longer knows it.
func (r *replayer) waitGone(ctx context.Context, uuid string) error {
	err := r.poll(ctx, func() (bool, error) {
		_, err := r.api.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(uuid)})
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("wait for %s to be deleted: %w", uuid, err)
	}
	return nil
}

// poll calls done at once and then every pollInterval until it reports
// true, fails, or the timeout or ctx ends.
func (r *replayer) poll(ctx context.Context, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	t := time.NewTicker(r.pollInterval)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// cliJSON renders the create request as one line of JSON with the API's
// member names, leaving out what is not set: what
// aws lambda create-event-source-mapping --cli-input-json accepts.
func cliJSON(in *lambda.CreateEventSourceMappingInput) string {
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Sprintf("(unprintable: %v)", err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Sprintf("(unprintable: %v)", err)
	}
	out, err := json.Marshal(prune(v))
	if err != nil {
		return fmt.Sprintf("(unprintable: %v)", err)
	}
	return string(out)
}

// prune drops nulls, empty strings, and objects and lists left empty;
// false and 0 stay, since they were set.
func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e = prune(e); e == nil {
				delete(v, k)
			} else {
				v[k] = e
			}
		}
		if len(v) == 0 {
			return nil
		}
	case []any:
		kept := v[:0]
		for _, e := range v {
			if e = prune(e); e != nil {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return kept
	case string:
		if v == "" {
			return nil
		}
	}
	return v
}
