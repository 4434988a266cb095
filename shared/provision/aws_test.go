package provision

// These tests run the EventBridge, SQS and Lambda steps through the real SDK
// clients against the in-test endpoints (eventbridgetest, sqstest,
// lambdatest), which speak the services'
// wire protocols and validate like AWS, and assert the calls they receive,
// in order, with their parameters.

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/lambdatest"
	"github.com/walbridge/walbridge/shared/sqstest"
)

// template has an AWS::Events::Rule whose pattern needs a parameter, a
// schedule (no pattern: left out) and a SAM function's EventBridgeRule
// event, whose ID has dots.
const template = `Transform: AWS::Serverless-2016-10-31
Parameters:
  ResourceName: {Type: String, Default: app}
Resources:
  OrdersRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [walbridge.database]
        resources: [!Ref ResourceName]
        detail: {table: [orders]}
      Targets:
        - {Id: deploy-time, Arn: !GetAtt OrdersQueue.Arn}
  Nightly:
    Type: AWS::Events::Rule
    Properties: {ScheduleExpression: rate(1 day)}
  Mailer:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Signup:
          Type: EventBridgeRule
          Properties:
            Pattern:
              detail-type: [DatabaseEvent]
              detail: {table: [users], operation: [insert]}
`

const (
	ordersPattern = `{"source":["walbridge.database"],"resources":["shop"],"detail":{"table":["orders"]}}`
	signupPattern = `{"detail-type":["DatabaseEvent"],"detail":{"table":["users"],"operation":["insert"]}}`
	streamARN     = "arn:aws:kinesis:us-east-1:000000000000:stream/walbridge"
	roleARN       = "arn:aws:iam::000000000000:role/walbridge-fanout"
)

// world is the three fakes behind real SDK clients, with one Log for the
// calls to all of them, so that the order across services shows.
type world struct {
	log    *awstest.Log
	events *eventbridgetest.Server
	queues *sqstest.Server
	lambda *lambdatest.Server
	ebc    *eventbridge.Client
	sqsc   *sqs.Client
	lc     *lambda.Client
}

func newWorld(t *testing.T, opts eventbridgetest.Options) *world {
	t.Helper()
	log := &awstest.Log{}
	opts.Log = log
	w := &world{
		log:    log,
		events: eventbridgetest.Start(t, opts),
		queues: sqstest.Start(t, sqstest.Options{Log: log}),
		lambda: lambdatest.Start(t, lambdatest.Options{Log: log}),
	}
	cfg := awstest.Config(t)
	w.ebc = eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(w.events.URL) })
	w.sqsc = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(w.queues.URL) })
	w.lc = lambda.NewFromConfig(cfg, func(o *lambda.Options) { o.BaseEndpoint = aws.String(w.lambda.URL) })
	return w
}

// bootstrapZip is a deployment package as scripts/awsinit makes one.
func bootstrapZip(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.Create("bootstrap")
	if err == nil {
		_, err = f.Write([]byte("#!/bin/sh\necho fanout\n"))
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTemplate(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// provisionAll runs the bus, rules and function steps in order, as
// scripts/awsinit does after the stream.
func (w *world) provisionAll(ctx context.Context, templatePath string, zipped []byte) ([]string, error) {
	if err := Bus(ctx, w.ebc, "walbridge"); err != nil {
		return nil, err
	}
	done, err := Rules(ctx, w.ebc, w.sqsc, "walbridge", templatePath, map[string]string{"ResourceName": "shop"})
	if err != nil {
		return done, err
	}
	return done, Fanout(ctx, w.lc, FanoutFunction{
		Name: "walbridge-fanout", Zip: zipped, Arch: ltypes.ArchitectureX8664, Role: roleARN,
		Env: map[string]string{"WALBRIDGE_EVENT_BUS": "walbridge"}, StreamARN: streamARN, BatchSize: 100,
	})
}

func TestProvisionCallsAndIdempotence(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, eventbridgetest.Options{})
	tmpl := writeTemplate(t, template)
	zipped := bootstrapZip(t)
	ordersURL, signupURL := w.queues.URL+"/000000000000/ordersrule", w.queues.URL+"/000000000000/mailer-events-signup"
	rules := []string{
		"events PutRule EventBusName=walbridge EventPattern=" + ordersPattern + " Name=OrdersRule",
		"sqs CreateQueue QueueName=ordersrule",
		"sqs GetQueueAttributes AttributeNames.0=QueueArn QueueUrl=" + ordersURL,
		"events PutTargets EventBusName=walbridge Rule=OrdersRule Targets.0.Arn=arn:aws:sqs:us-east-1:000000000000:ordersrule Targets.0.Id=queue",
		"events PutRule EventBusName=walbridge EventPattern=" + signupPattern + " Name=Mailer.Events.Signup",
		"sqs CreateQueue QueueName=mailer-events-signup",
		"sqs GetQueueAttributes AttributeNames.0=QueueArn QueueUrl=" + signupURL,
		"events PutTargets EventBusName=walbridge Rule=Mailer.Events.Signup Targets.0.Arn=arn:aws:sqs:us-east-1:000000000000:mailer-events-signup Targets.0.Id=queue",
	}
	createFunction := "lambda CreateFunction Architectures.0=x86_64 Environment.Variables.WALBRIDGE_EVENT_BUS=walbridge FunctionName=walbridge-fanout " +
		"Handler=bootstrap Role=" + roleARN + " Runtime=provided.al2023 Timeout=60"
	list := "lambda ListEventSourceMappings EventSourceArn=" + streamARN + " FunctionName=walbridge-fanout"
	runs := []struct {
		name  string
		calls []string
	}{
		{"first run creates everything", concat(
			[]string{"events CreateEventBus Name=walbridge"}, rules,
			[]string{createFunction, list, "lambda CreateEventSourceMapping BatchSize=100 BisectBatchOnFunctionError=true EventSourceArn=" + streamARN +
				" FunctionName=walbridge-fanout FunctionResponseTypes.0=ReportBatchItemFailures MaximumRecordAgeInSeconds=3600 MaximumRetryAttempts=10 StartingPosition=TRIM_HORIZON"})},
		// The bus and function exist (errors handled), rules, queues and
		// targets are put again in place, the code is updated and the
		// mapping that exists is kept.
		{"second run updates in place", concat(
			[]string{"events CreateEventBus Name=walbridge"}, rules,
			[]string{createFunction, "lambda UpdateFunctionCode FunctionName=walbridge-fanout", list})},
	}
	for _, run := range runs {
		w.log.Reset()
		done, err := w.provisionAll(ctx, tmpl, zipped)
		if err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		if want := []string{"OrdersRule → SQS " + ordersURL, "Mailer.Events.Signup → SQS " + signupURL}; !reflect.DeepEqual(done, want) {
			t.Errorf("%s: Rules reported %q, want %q", run.name, done, want)
		}
		if got := w.log.Lines(); !reflect.DeepEqual(got, run.calls) {
			t.Errorf("%s: calls\n got %s\nwant %s", run.name, strings.Join(got, "\n     "), strings.Join(run.calls, "\n     "))
		}
	}

	// No duplicates: one bus, each rule once with one target, one queue a
	// rule, one function and one mapping.
	if got, want := w.events.Buses(), []string{"default", "walbridge"}; !reflect.DeepEqual(got, want) {
		t.Errorf("buses %v, want %v", got, want)
	}
	wantRules := []eventbridgetest.Rule{
		{Name: "Mailer.Events.Signup", EventBus: "walbridge", EventPattern: signupPattern, State: "ENABLED",
			Targets: []eventbridgetest.Target{{ID: "queue", Arn: "arn:aws:sqs:us-east-1:000000000000:mailer-events-signup"}}},
		{Name: "OrdersRule", EventBus: "walbridge", EventPattern: ordersPattern, State: "ENABLED",
			Targets: []eventbridgetest.Target{{ID: "queue", Arn: "arn:aws:sqs:us-east-1:000000000000:ordersrule"}}},
	}
	if got := w.events.Rules("walbridge"); !reflect.DeepEqual(got, wantRules) {
		t.Errorf("rules\n got %+v\nwant %+v", got, wantRules)
	}
	if got, want := w.queues.Queues(), []string{signupURL, ordersURL}; !reflect.DeepEqual(got, want) {
		t.Errorf("queues %v, want %v", got, want)
	}
	fn, ok := w.lambda.Function("walbridge-fanout")
	want := lambdatest.Function{Name: "walbridge-fanout", Runtime: "provided.al2023", Handler: "bootstrap", Role: roleARN,
		Architectures: []string{"x86_64"}, Timeout: 60, Env: map[string]string{"WALBRIDGE_EVENT_BUS": "walbridge"}, Zip: zipped, CodeUpdates: 1}
	if !ok || !reflect.DeepEqual(fn, want) {
		t.Errorf("function\n got %+v\nwant %+v", fn, want)
	}
	if bootstrap, err := fn.File("bootstrap"); err != nil || bootstrap != "#!/bin/sh\necho fanout\n" {
		t.Errorf("deployed bootstrap %q", bootstrap)
	}
	out, err := w.lc.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("walbridge-fanout")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.EventSourceMappings); n != 1 {
		t.Fatalf("%d event source mappings, want 1", n)
	}
	m := out.EventSourceMappings[0]
	if aws.ToString(m.EventSourceArn) != streamARN || m.StartingPosition != ltypes.EventSourcePositionTrimHorizon ||
		aws.ToInt32(m.BatchSize) != 100 || !aws.ToBool(m.BisectBatchOnFunctionError) || aws.ToInt32(m.MaximumRetryAttempts) != 10 ||
		aws.ToInt32(m.MaximumRecordAgeInSeconds) != 3600 || !reflect.DeepEqual(m.FunctionResponseTypes, []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures}) {
		t.Errorf("mapping %+v", m)
	}
}

// failer is what every fake has to fail an operation.
type failer interface {
	Fail(op, code, message string)
}

// TestProvisionFailures fails each call in turn: the step stops at it (no
// call after it) and says which step and resource failed, wrapping the
// service's error.
func TestProvisionFailures(t *testing.T) {
	tests := []struct {
		op, prefix string
		// fail makes op fail; nil means Fail on the fake serving op.
		fail func(*world)
		// api is whether the error wraps the service's API error (a
		// partial failure answers 200).
		api bool
	}{
		{op: "CreateEventBus", prefix: "create event bus walbridge: ", api: true},
		{op: "PutRule", prefix: "put rule OrdersRule: ", api: true},
		{op: "CreateQueue", prefix: "create queue for rule OrdersRule: ", api: true},
		{op: "GetQueueAttributes", prefix: "queue ARN for rule OrdersRule: ", api: true},
		{op: "PutTargets", prefix: "put target of rule OrdersRule: ", api: true},
		{op: "PutTargets", prefix: "put target of rule OrdersRule: target queue: AccessDeniedException: ", api: false},
		{op: "CreateFunction", prefix: "create function walbridge-fanout: ", api: true},
		{op: "UpdateFunctionCode", prefix: "update function walbridge-fanout: ", api: true,
			fail: func(w *world) {
				w.lambda.AddFunction("walbridge-fanout")
				w.lambda.Fail("UpdateFunctionCode", "AccessDeniedException", "denied")
			}},
		{op: "ListEventSourceMappings", prefix: "list event source mappings: ", api: true},
		{op: "CreateEventSourceMapping", prefix: "create event source mapping: ", api: true},
	}
	for _, tt := range tests {
		name := tt.op
		if !tt.api {
			name += " partly"
		}
		t.Run(name, func(t *testing.T) {
			var opts eventbridgetest.Options
			if !tt.api {
				opts.RejectTarget = func(string, eventbridgetest.Target) (string, string) { return "AccessDeniedException", "denied" }
			}
			w := newWorld(t, opts)
			switch {
			case tt.fail != nil:
				tt.fail(w)
			case tt.api:
				for _, f := range []failer{w.events, w.queues, w.lambda} {
					f.Fail(tt.op, "AccessDeniedException", "denied")
				}
			}
			_, err := w.provisionAll(context.Background(), writeTemplate(t, template), bootstrapZip(t))
			if err == nil || !strings.HasPrefix(err.Error(), tt.prefix) || !strings.Contains(err.Error(), "denied") {
				t.Fatalf("err = %v, want %q... saying denied", err, tt.prefix)
			}
			var apiErr smithy.APIError
			if tt.api && (!errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException") {
				t.Errorf("err %v does not wrap the service's AccessDeniedException", err)
			}
			calls := w.log.Calls()
			if last := calls[len(calls)-1]; last.Op != tt.op {
				t.Errorf("last call %s, want the failed %s", last, tt.op)
			}
		})
	}
}

// TestRulesOnTheDefaultBus: Bus makes no call for the default bus, which
// always exists, and Rules puts rules and targets on it, whether it is
// named or left empty.
func TestRulesOnTheDefaultBus(t *testing.T) {
	tests := []struct{ name, bus, param string }{
		{"named", "default", " EventBusName=default"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, eventbridgetest.Options{})
			if err := Bus(ctx, w.ebc, tt.bus); err != nil {
				t.Fatal(err)
			}
			if n := len(w.log.Calls()); n != 0 {
				t.Fatalf("Bus(%q) made %d calls", tt.bus, n)
			}
			if _, err := Rules(ctx, w.ebc, w.sqsc, tt.bus, writeTemplate(t, template), map[string]string{"ResourceName": "shop"}); err != nil {
				t.Fatalf("Rules: %v", err)
			}
			lines := w.log.Lines()
			if want := "events PutRule" + tt.param + " EventPattern=" + ordersPattern + " Name=OrdersRule"; lines[0] != want {
				t.Errorf("first call\n got %s\nwant %s", lines[0], want)
			}
			if got := w.events.Rules("default"); len(got) != 2 || len(got[0].Targets) != 1 || len(got[1].Targets) != 1 {
				t.Errorf("rules on the default bus: %+v", got)
			}
		})
	}
}

// TestRulesRefusesInvalidTemplates: a pattern EventBridge would refuse, or
// one only known at deploy time, stops Rules before any call.
func TestRulesRefusesInvalidTemplates(t *testing.T) {
	tests := []struct{ name, template, want string }{
		{"pattern leaf not an array", strings.Replace(template, "detail: {table: [orders]}", "detail: {table: orders}", 1), "rule OrdersRule in "},
		{"deploy-time parameter", strings.Replace(template, "ResourceName: {Type: String, Default: app}", "ResourceName: {Type: String}", 1), "rule OrdersRule in "},
		{"not a template", "just: yaml\n", "rules of "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, eventbridgetest.Options{})
			_, err := Rules(context.Background(), w.ebc, w.sqsc, "walbridge", writeTemplate(t, tt.template), nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q...", err, tt.want)
			}
			if calls := w.log.Lines(); len(calls) != 0 {
				t.Errorf("calls made: %q", calls)
			}
		})
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// unzip returns the content of the named file in a zip archive.
