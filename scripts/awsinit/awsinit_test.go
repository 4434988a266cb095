package main

// These tests run awsinit as docker-compose's init step does, from the
// repository root with its default template, against the Kinesis emulator
// and the in-test EventBridge, SQS and Lambda endpoints, reached the
// way LocalStack is: through the SDK's AWS_ENDPOINT_URL_* variables.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/lambdatest"
	"github.com/walbridge/walbridge/shared/repo"
	"github.com/walbridge/walbridge/shared/sqstest"
)

// welcomePattern is infra/template.yaml's WelcomeEmailRule pattern for
// database app.
const welcomePattern = `{"source":["walbridge.database"],"detail-type":["DatabaseEvent"],"resources":["app"],"detail":{"schema":["public"],"table":["users"],"operation":["insert"]}}`

type stack struct {
	log       *awstest.Log
	events    *eventbridgetest.Server
	queues    *sqstest.Server
	lambda    *lambdatest.Server
	kinesis   *kinesis.Client
	bootstrap string // path of the built fanout stand-in
}

func newStack(t *testing.T) *stack {
	t.Helper()
	k := kinesistest.StartEmulator(t)
	log := &awstest.Log{}
	s := &stack{
		log:     log,
		events:  eventbridgetest.Start(t, eventbridgetest.Options{Log: log}),
		queues:  sqstest.Start(t, sqstest.Options{Log: log}),
		lambda:  lambdatest.Start(t, lambdatest.Options{Log: log}),
		kinesis: kinesistest.Client(t, k.URL),
	}
	dir := t.TempDir()
	awstest.IsolateEnv(t, map[string]string{
		"AWS_ENDPOINT_URL":             "",
		"AWS_ENDPOINT_URL_KINESIS":     k.URL,
		"AWS_ENDPOINT_URL_EVENTBRIDGE": s.events.URL,
		"AWS_ENDPOINT_URL_SQS":         s.queues.URL,
		"AWS_ENDPOINT_URL_LAMBDA":      s.lambda.URL,
		"AWS_CA_BUNDLE":                "", // plain HTTP on loopback
	})
	s.bootstrap = filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(s.bootstrap, []byte("#!/bin/sh\necho fanout\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root) // where docker-compose runs it: the default template is infra/template.yaml
	return s
}

func (s *stack) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"--bootstrap", s.bootstrap, "--database", "app"}, args...), &out)
	return out.String(), err
}

func TestRunTwiceProvisionsOnce(t *testing.T) {
	s := newStack(t)
	queueURL := s.queues.URL + "/000000000000/welcomeemailrule"
	var streamARN string
	for i, name := range []string{"first run", "second run"} {
		s.log.Reset()
		out, err := s.run(t)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if i == 0 {
			sum, err := s.kinesis.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("walbridge")})
			if err != nil {
				t.Fatal(err)
			}
			if n := aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount); n != 2 {
				t.Errorf("stream has %d shards, want 2", n)
			}
			streamARN = aws.ToString(sum.StreamDescriptionSummary.StreamARN)
		}
		wantOut := "stream walbridge ready: " + streamARN + "\n" +
			"event bus walbridge ready\n" +
			"rule WelcomeEmailRule → SQS " + queueURL + "\n" +
			"function walbridge-fanout deployed with its event source mapping\n"
		if out != wantOut {
			t.Errorf("%s printed\n%s\nwant\n%s", name, out, wantOut)
		}
		createFunction := "lambda CreateFunction Architectures.0=x86_64 Environment.Variables.WALBRIDGE_EVENT_BUS=walbridge " +
			"Environment.Variables.WALBRIDGE_RESOURCE=app FunctionName=walbridge-fanout Handler=bootstrap " +
			"Role=arn:aws:iam::000000000000:role/walbridge-fanout Runtime=provided.al2023 Timeout=60"
		list := "lambda ListEventSourceMappings EventSourceArn=" + streamARN + " FunctionName=walbridge-fanout"
		want := []string{
			"events CreateEventBus Name=walbridge",
			"events PutRule EventBusName=walbridge EventPattern=" + welcomePattern + " Name=WelcomeEmailRule",
			"sqs CreateQueue QueueName=welcomeemailrule",
			"sqs GetQueueAttributes AttributeNames.0=QueueArn QueueUrl=" + queueURL,
			"events PutTargets EventBusName=walbridge Rule=WelcomeEmailRule Targets.0.Arn=arn:aws:sqs:us-east-1:000000000000:welcomeemailrule Targets.0.Id=queue",
			createFunction,
		}
		if i == 0 {
			want = append(want, list, "lambda CreateEventSourceMapping BatchSize=100 BisectBatchOnFunctionError=true EventSourceArn="+streamARN+
				" FunctionName=walbridge-fanout FunctionResponseTypes.0=ReportBatchItemFailures MaximumRecordAgeInSeconds=3600 MaximumRetryAttempts=10 StartingPosition=TRIM_HORIZON")
		} else {
			want = append(want, "lambda UpdateFunctionCode FunctionName=walbridge-fanout", list)
		}
		if got := s.log.Lines(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: calls\n got %s\nwant %s", name, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}

	if rules := s.events.Rules("walbridge"); len(rules) != 1 || len(rules[0].Targets) != 1 {
		t.Errorf("rules %+v, want WelcomeEmailRule with one target", rules)
	}
	if q := s.queues.Queues(); len(q) != 1 {
		t.Errorf("queues %v, want one", q)
	}
	fn, _ := s.lambda.Function("walbridge-fanout")
	if got, err := fn.File("bootstrap"); err != nil || got != "#!/bin/sh\necho fanout\n" {
		t.Errorf("deployed bootstrap %q", got)
	}
	lc := lambda.NewFromConfig(awstest.Config(t), func(o *lambda.Options) { o.BaseEndpoint = aws.String(s.lambda.URL) })
	m, err := lc.ListEventSourceMappings(context.Background(), &lambda.ListEventSourceMappingsInput{EventSourceArn: aws.String(streamARN)})
	if err != nil || len(m.EventSourceMappings) != 1 {
		t.Errorf("mappings of the stream: %v, %+v", err, m)
	}
}

// TestRunStopsAtTheFirstFailure: a failed step ends the run with an error
// that names it, after the steps before it printed their lines.
func TestRunStopsAtTheFirstFailure(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		fail    string // a Lambda operation to fail
		wantErr string // prefix
		// lastLine is the last line printed; lastCall the last call made.
		lastLine, lastCall string
	}{
		{name: "skip fanout", args: []string{"--skip-fanout"}, lastLine: "rule WelcomeEmailRule", lastCall: "PutTargets"},
		{name: "no bootstrap", args: []string{"--bootstrap", "/nonexistent/bootstrap"}, wantErr: "fanout bootstrap (run scripts/build-fanout): ",
			lastLine: "rule WelcomeEmailRule", lastCall: "PutTargets"},
		{name: "unknown architecture", args: []string{"--arch", "amd64"}, wantErr: "create function walbridge-fanout: ",
			lastLine: "rule WelcomeEmailRule", lastCall: "CreateFunction"},
		{name: "mapping refused", fail: "CreateEventSourceMapping", wantErr: "create event source mapping: ",
			lastLine: "rule WelcomeEmailRule", lastCall: "CreateEventSourceMapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			if tt.fail != "" {
				s.lambda.Fail(tt.fail, "AccessDeniedException", "denied")
			}
			out, err := s.run(t, tt.args...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q...", err, tt.wantErr)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.lastLine) {
				t.Errorf("last line printed %q, want %q...", last, tt.lastLine)
			}
			calls := s.log.Calls()
			if last := calls[len(calls)-1]; last.Op != tt.lastCall {
				t.Errorf("last call %s, want %s", last, tt.lastCall)
			}
		})
	}
}
