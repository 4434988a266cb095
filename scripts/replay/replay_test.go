package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/lambdatest"
)

const (
	stream   = "arn:aws:kinesis:us-east-1:000000000000:stream/walbridge-changes"
	dlq      = "arn:aws:sqs:us-east-1:000000000000:walbridge-FanoutDeadLetterQueue"
	function = "walbridge-fanout"
	fnArn    = "arn:aws:lambda:us-east-1:000000000000:function:walbridge-fanout"
)

// setup starts the Lambda fake with fanout's mapping as infra/template.yaml
// creates it, settled, and points the SDK's standard chain at the fake.
func setup(t *testing.T, enabled bool) (*lambdatest.Server, *lambda.Client, string) {
	t.Helper()
	f := lambdatest.Start(t, lambdatest.Options{})
	f.AddFunction(function)
	awstest.IsolateEnv(t, map[string]string{
		"AWS_ENDPOINT_URL_LAMBDA": f.URL,
	})
	c := lambda.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *lambda.Options) { o.BaseEndpoint = aws.String(f.URL) })
	out, err := c.CreateEventSourceMapping(context.Background(), &lambda.CreateEventSourceMappingInput{
		FunctionName:                   aws.String(function),
		EventSourceArn:                 aws.String(stream),
		Enabled:                        aws.Bool(enabled),
		StartingPosition:               types.EventSourcePositionTrimHorizon,
		BatchSize:                      aws.Int32(100),
		MaximumBatchingWindowInSeconds: aws.Int32(0),
		ParallelizationFactor:          aws.Int32(1),
		FunctionResponseTypes:          []types.FunctionResponseType{types.FunctionResponseTypeReportBatchItemFailures},
		BisectBatchOnFunctionError:     aws.Bool(true),
		MaximumRetryAttempts:           aws.Int32(10),
		MaximumRecordAgeInSeconds:      aws.Int32(3600),
		DestinationConfig:              &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String(dlq)}},
	})
	if err != nil {
		t.Fatalf("create the stack's mapping: %v", err)
	}
	f.Settle()
	f.Log.Reset()
	return f, c, aws.ToString(out.UUID)
}

func replay(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append(args, "--poll-interval", "1ms", "--timeout", "10s"), &out, &errOut)
	return code, out.String(), errOut.String()
}

// createLine is the CreateEventSourceMapping call that copies the stack's
// mapping, with the starting position given.
func createLine(enabled bool, position string) string {
	return "lambda CreateEventSourceMapping BatchSize=100 BisectBatchOnFunctionError=true DestinationConfig.OnFailure.Destination=" + dlq +
		" Enabled=" + strconv.FormatBool(enabled) + " EventSourceArn=" + stream + " FunctionName=" + fnArn +
		" FunctionResponseTypes.0=ReportBatchItemFailures MaximumBatchingWindowInSeconds=0 MaximumRecordAgeInSeconds=3600 MaximumRetryAttempts=10" +
		" ParallelizationFactor=1 " + position + " TumblingWindowInSeconds=0"
}

func TestReplayFromTime(t *testing.T) {
	f, c, old := setup(t, true)
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	code, stdout, stderr := replay(t, "--function", function, "--stream", stream, "--from", "2026-11-20T10:00:00Z", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	lines := f.Log.Lines()
	if len(lines) < 8 {
		t.Fatalf("calls:\n%s", strings.Join(lines, "\n"))
	}
	newUUID := strings.TrimPrefix(lines[len(lines)-1], "lambda GetEventSourceMapping UUID=")
	want := []string{
		"lambda ListEventSourceMappings EventSourceArn=" + stream + " FunctionName=" + function,
		"lambda UpdateEventSourceMapping Enabled=false UUID=" + old,
		"lambda GetEventSourceMapping UUID=" + old, // Disabling
		"lambda GetEventSourceMapping UUID=" + old, // Disabled
		"lambda DeleteEventSourceMapping UUID=" + old,
		"lambda GetEventSourceMapping UUID=" + old, // Deleting
		"lambda GetEventSourceMapping UUID=" + old, // not found
		createLine(true, "StartingPosition=AT_TIMESTAMP StartingPositionTimestamp="+strconv.FormatInt(from.Unix(), 10)),
		"lambda GetEventSourceMapping UUID=" + newUUID, // Creating
		"lambda GetEventSourceMapping UUID=" + newUUID, // Enabled
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls\n got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := f.MaxDelivering(stream); n != 1 {
		t.Errorf("%d mappings could deliver at once, want 1", n)
	}

	ctx := context.Background()
	if _, err := c.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(old)}); !errors.As(err, new(*types.ResourceNotFoundException)) {
		t.Errorf("old mapping: err = %v, want ResourceNotFoundException", err)
	}
	got, err := c.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(newUUID)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.State) != "Enabled" || got.StartingPosition != types.EventSourcePositionAtTimestamp || !aws.ToTime(got.StartingPositionTimestamp).Equal(from) ||
		aws.ToInt32(got.MaximumRetryAttempts) != 10 || aws.ToString(got.DestinationConfig.OnFailure.Destination) != dlq {
		t.Errorf("new mapping: %+v", got)
	}

	for _, s := range []string{"detail.lsn + detail.seq", "duplicates", "nothing publishes"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	for _, s := range []string{"1. UpdateEventSourceMapping UUID=" + old + " Enabled=false", "AT_TIMESTAMP 2026-11-20T10:00:00Z", `"StartingPositionTimestamp":"2026-11-20T10:00:00Z"`, "done: " + newUUID} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
}

func TestReplayTrimHorizon(t *testing.T) {
	f, _, old := setup(t, true)
	code, stdout, stderr := replay(t, "--function", function, "--stream", stream, "--trim-horizon", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := f.Log.Lines()
	if want := createLine(true, "StartingPosition=TRIM_HORIZON"); lines[7] != want {
		t.Errorf("call 8\n got %s\nwant %s", lines[7], want)
	}
	if lines[1] != "lambda UpdateEventSourceMapping Enabled=false UUID="+old || lines[4] != "lambda DeleteEventSourceMapping UUID="+old {
		t.Errorf("calls:\n%s", strings.Join(lines, "\n"))
	}
	if f.MaxDelivering(stream) != 1 {
		t.Errorf("two mappings delivered at once")
	}
}

func TestReplayDisabledMappingStaysDisabled(t *testing.T) {
	f, _, old := setup(t, false)
	code, stdout, stderr := replay(t, "--function", fnArn, "--stream", stream, "--trim-horizon", "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := f.Log.Lines()
	want := []string{
		"lambda ListEventSourceMappings EventSourceArn=" + stream + " FunctionName=" + fnArn,
		"lambda DeleteEventSourceMapping UUID=" + old,
		"lambda GetEventSourceMapping UUID=" + old,
		"lambda GetEventSourceMapping UUID=" + old,
		createLine(false, "StartingPosition=TRIM_HORIZON"),
	}
	if len(lines) != 7 || strings.Join(lines[:5], "\n") != strings.Join(want, "\n") {
		t.Errorf("calls\n got:\n%s\nwant (then two Gets):\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(stdout, "created Disabled") {
		t.Errorf("stdout does not say the new mapping stays disabled:\n%s", stdout)
	}
}

func TestReplayDryRunChangesNothing(t *testing.T) {
	f, c, old := setup(t, true)
	code, stdout, stderr := replay(t, "--function", function, "--stream", stream, "--from", "2026-11-20T10:00:00.5Z", "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got := f.Log.Lines(); len(got) != 1 || !strings.HasPrefix(got[0], "lambda ListEventSourceMappings ") {
		t.Errorf("dry run made calls:\n%s", strings.Join(got, "\n"))
	}
	m, err := c.GetEventSourceMapping(context.Background(), &lambda.GetEventSourceMappingInput{UUID: aws.String(old)})
	if err != nil || aws.ToString(m.State) != "Enabled" {
		t.Errorf("old mapping after dry run: %v %v", err, aws.ToString(m.State))
	}
	for _, s := range []string{
		"1. UpdateEventSourceMapping UUID=" + old + " Enabled=false",
		"2. DeleteEventSourceMapping UUID=" + old,
		"3. CreateEventSourceMapping",
		`"StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":"2026-11-20T10:00:00.5Z"`,
		`"DestinationConfig":{"OnFailure":{"Destination":"` + dlq + `"}}`,
		"dry run: nothing was changed",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("plan lacks %q:\n%s", s, stdout)
		}
	}
	if !strings.Contains(stderr, "detail.lsn + detail.seq") {
		t.Errorf("no duplicate warning:\n%s", stderr)
	}
}

func TestReplayRefusesWithoutYes(t *testing.T) {
	f, _, _ := setup(t, true)
	code, _, stderr := replay(t, "--function", function, "--stream", stream, "--trim-horizon")
	if code != exitUsage || !strings.Contains(stderr, "--yes") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if got := f.Log.Lines(); len(got) != 0 {
		t.Errorf("calls without --yes: %q", got)
	}
}

func TestReplayUsage(t *testing.T) {
	base := []string{"--function", function, "--stream", stream}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"neither position", base, "exactly one of --from"},
		{"both positions", append(base[:4:4], "--trim-horizon", "--from", "2026-11-20T10:00:00Z"), "exactly one of --from"},
		{"bad time", append(base[:4:4], "--from", "yesterday"), "RFC 3339"},
		{"future", append(base[:4:4], "--from", time.Now().Add(time.Hour).Format(time.RFC3339)), "in the future"},
		{"no function", []string{"--stream", stream, "--trim-horizon"}, "required"},
		{"extra argument", append(base[:4:4], "--trim-horizon", "now"), "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := replay(t, append(tt.args, "--yes")...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestReplayRefusesAmbiguousMappings(t *testing.T) {
	f, c, _ := setup(t, true)
	if _, err := c.CreateEventSourceMapping(context.Background(), &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String(fnArn), EventSourceArn: aws.String(stream), StartingPosition: types.EventSourcePositionLatest,
	}); err == nil {
		t.Fatal("the fake accepted a second mapping of one function and stream")
	}
	// A second mapping, of an alias: listAll finds both, as a FunctionName
	// matching several qualifiers would.
	if _, err := c.CreateEventSourceMapping(context.Background(), &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String(function + ":live"), EventSourceArn: aws.String(stream), StartingPosition: types.EventSourcePositionLatest,
	}); err != nil {
		t.Fatal(err)
	}
	f.Settle()
	f.Log.Reset()
	r := &replayer{api: listAll{c}, out: &bytes.Buffer{}, warn: &bytes.Buffer{}, pollInterval: time.Millisecond, timeout: time.Second}
	err := r.replay(context.Background(), options{function: function, source: stream, trimHorizon: true, yes: true})
	if err == nil || !strings.Contains(err.Error(), "2 event source mappings") {
		t.Errorf("err = %v", err)
	}
	for _, l := range f.Log.Lines() {
		if !strings.HasPrefix(l, "lambda ListEventSourceMappings") {
			t.Errorf("mutating call with two mappings: %s", l)
		}
	}
}

// listAll lists every mapping on the stream whatever the function, as a
// FunctionName that matches several qualifiers would.
type listAll struct{ *lambda.Client }

func (l listAll) ListEventSourceMappings(ctx context.Context, in *lambda.ListEventSourceMappingsInput, opts ...func(*lambda.Options)) (*lambda.ListEventSourceMappingsOutput, error) {
	cp := *in
	cp.FunctionName = nil
	return l.Client.ListEventSourceMappings(ctx, &cp, opts...)
}

// failCreate refuses every CreateEventSourceMapping.
type failCreate struct{ *lambda.Client }

func (failCreate) CreateEventSourceMapping(context.Context, *lambda.CreateEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.CreateEventSourceMappingOutput, error) {
	return nil, errors.New("throttled")
}

func TestReplayCreateFailureSaysHowToRecover(t *testing.T) {
	f, c, _ := setup(t, true)
	r := &replayer{api: failCreate{c}, out: &bytes.Buffer{}, warn: &bytes.Buffer{}, pollInterval: time.Millisecond, timeout: time.Second}
	err := r.replay(context.Background(), options{function: function, source: stream, trimHorizon: true, yes: true})
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"throttled", "nothing reads the stream", "aws lambda create-event-source-mapping --cli-input-json", `"StartingPosition":"TRIM_HORIZON"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if f.MaxDelivering(stream) != 1 {
		t.Error("two mappings delivered at once")
	}
}

func TestPlanCopiesOnlyOnFailureDestination(t *testing.T) {
	old := types.EventSourceMappingConfiguration{
		UUID: aws.String("u"), State: aws.String("Enabled"), FunctionArn: aws.String(fnArn), EventSourceArn: aws.String(stream),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{}, OnSuccess: &types.OnSuccess{}},
		FilterCriteria:    &types.FilterCriteria{Filters: []types.Filter{{Pattern: aws.String(`{"partitionKey":[{"prefix":"public.users"}]}`)}}},
	}
	p, err := newPlan(old, time.Time{}, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.create.DestinationConfig != nil {
		t.Errorf("empty destination copied: %+v", p.create.DestinationConfig)
	}
	if got := cliJSON(p.create); got != `{"Enabled":true,"EventSourceArn":"`+stream+`","FilterCriteria":{"Filters":[{"Pattern":"{\"partitionKey\":[{\"prefix\":\"public.users\"}]}"}]},"FunctionName":"`+fnArn+`","ParallelizationFactor":1,"StartingPosition":"TRIM_HORIZON"}` {
		t.Errorf("cliJSON = %s", got)
	}

	old.State = aws.String("Updating")
	if _, err := newPlan(old, time.Time{}, true, 1); err == nil || !strings.Contains(err.Error(), "Updating") {
		t.Errorf("transitional state: err = %v", err)
	}
	old.State = aws.String("Enabled")
	old.FilterCriteriaError = &types.FilterCriteriaError{ErrorCode: aws.String("KMSAccessDeniedException"), Message: aws.String("no kms:Decrypt")}
	if _, err := newPlan(old, time.Time{}, true, 1); err == nil || !strings.Contains(err.Error(), "filter criteria") {
		t.Errorf("unreadable filters: err = %v", err)
	}
}

// conflictOnce answers the first create with the conflict Lambda reports
// while it still counts a mapping that reads no longer find.
type conflictOnce struct {
	*lambda.Client
	calls int
}

func (c *conflictOnce) CreateEventSourceMapping(ctx context.Context, in *lambda.CreateEventSourceMappingInput, opts ...func(*lambda.Options)) (*lambda.CreateEventSourceMappingOutput, error) {
	if c.calls++; c.calls == 1 {
		return nil, &types.ResourceConflictException{Message: aws.String("provided mapping already exists")}
	}
	return c.Client.CreateEventSourceMapping(ctx, in, opts...)
}

func TestReplayRetriesCreateWhileTheOldMappingLingers(t *testing.T) {
	f, c, _ := setup(t, true)
	api := &conflictOnce{Client: c}
	r := &replayer{api: api, out: &bytes.Buffer{}, warn: &bytes.Buffer{}, pollInterval: time.Millisecond, timeout: time.Second}
	if err := r.replay(context.Background(), options{function: function, source: stream, trimHorizon: true, yes: true}); err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, l := range f.Log.Lines() {
		if strings.HasPrefix(l, "lambda CreateEventSourceMapping ") {
			creates++
		}
	}
	if api.calls != 2 || creates != 1 {
		t.Errorf("%d create attempts, %d reached Lambda; want 2 and 1", api.calls, creates)
	}
}

// TestReplayResetsParallelization: a new mapping reads each shard one
// batch at a time unless asked otherwise, whatever the old one did, since
// version 2 records are in order per row only so.
func TestReplayResetsParallelization(t *testing.T) {
	old := types.EventSourceMappingConfiguration{UUID: aws.String("u"), State: aws.String("Enabled"), FunctionArn: aws.String(fnArn),
		EventSourceArn: aws.String(stream), ParallelizationFactor: aws.Int32(4)}
	for _, tt := range []struct {
		args []string
		want int32
	}{{nil, 1}, {[]string{"--parallelization-factor", "4"}, 4}} {
		o, err := parseArgs(append([]string{"--function", function, "--stream", stream, "--trim-horizon"}, tt.args...), io.Discard, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPlan(old, o.from, o.trimHorizon, int32(o.parallelization))
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToInt32(p.create.ParallelizationFactor); got != tt.want {
			t.Errorf("%v: ParallelizationFactor %d, want %d", tt.args, got, tt.want)
		}
	}
	if _, err := parseArgs([]string{"--function", function, "--stream", stream, "--trim-horizon", "--parallelization-factor", "11"}, io.Discard, time.Now()); err == nil {
		t.Error("--parallelization-factor 11 accepted")
	}
}
