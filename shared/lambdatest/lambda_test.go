package lambdatest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

const streamArn = "arn:aws:kinesis:us-east-1:000000000000:stream/changes"

func sdkConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

func lambdaClient(url string) *lambda.Client {
	return lambda.NewFromConfig(sdkConfig(), func(o *lambda.Options) { o.BaseEndpoint = aws.String(url) })
}

func state(t *testing.T, c *lambda.Client, uuid string) string {
	t.Helper()
	out, err := c.GetEventSourceMapping(context.Background(), &lambda.GetEventSourceMappingInput{UUID: aws.String(uuid)})
	var nf *ltypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "not found"
	}
	if err != nil {
		t.Fatalf("GetEventSourceMapping: %v", err)
	}
	return aws.ToString(out.State)
}

func TestLambdaMappingLifecycle(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	fnArn := f.AddFunction("fanout")
	c := lambdaClient(f.URL)

	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	created, err := c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName:              aws.String("fanout"),
		EventSourceArn:            aws.String(streamArn),
		StartingPosition:          ltypes.EventSourcePositionAtTimestamp,
		StartingPositionTimestamp: aws.Time(at),
		BatchSize:                 aws.Int32(250),
		FunctionResponseTypes:     []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures},
		DestinationConfig:         &ltypes.DestinationConfig{OnFailure: &ltypes.OnFailure{Destination: aws.String("arn:aws:sqs:us-east-1:000000000000:dlq")}},
	})
	if err != nil {
		t.Fatalf("CreateEventSourceMapping: %v", err)
	}
	uuid := aws.ToString(created.UUID)
	if got := aws.ToString(created.State); got != "Creating" {
		t.Errorf("state after create = %q, want Creating", got)
	}
	if got := aws.ToString(created.FunctionArn); got != fnArn {
		t.Errorf("FunctionArn = %q, want %q", got, fnArn)
	}
	if got := aws.ToTime(created.StartingPositionTimestamp); !got.Equal(at) {
		t.Errorf("StartingPositionTimestamp = %v, want %v", got, at)
	}
	if got := aws.ToInt32(created.MaximumRetryAttempts); got != -1 {
		t.Errorf("default MaximumRetryAttempts = %d, want -1", got)
	}

	// A second mapping of the same function and stream is refused, as long
	// as the first exists in any state.
	_, err = c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String(fnArn), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionLatest,
	})
	var conflict *ltypes.ResourceConflictException
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), uuid) {
		t.Errorf("duplicate create: err = %v, want ResourceConflictException naming %s", err, uuid)
	}

	// An update during a transition is refused.
	_, err = c.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: aws.String(uuid), Enabled: aws.Bool(false)})
	var inUse *ltypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Errorf("update while creating: err = %v, want ResourceInUseException", err)
	}

	for _, want := range []string{"Creating", "Enabled", "Enabled"} {
		if got := state(t, c, uuid); got != want {
			t.Fatalf("state = %q, want %q", got, want)
		}
	}
	if _, err := c.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: aws.String(uuid), Enabled: aws.Bool(false)}); err != nil {
		t.Fatalf("disable: %v", err)
	}
	for _, want := range []string{"Disabling", "Disabled"} {
		if got := state(t, c, uuid); got != want {
			t.Fatalf("state = %q, want %q", got, want)
		}
	}
	if _, err := c.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: aws.String(uuid)}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, want := range []string{"Deleting", "not found"} {
		if got := state(t, c, uuid); got != want {
			t.Fatalf("state = %q, want %q", got, want)
		}
	}
	if n := f.MaxDelivering(streamArn); n != 1 {
		t.Errorf("MaxDelivering = %d, want 1", n)
	}

	lines := f.Log.Lines()
	wantFirst := "lambda CreateEventSourceMapping BatchSize=250 DestinationConfig.OnFailure.Destination=arn:aws:sqs:us-east-1:000000000000:dlq " +
		"EventSourceArn=" + streamArn + " FunctionName=fanout FunctionResponseTypes.0=ReportBatchItemFailures StartingPosition=AT_TIMESTAMP StartingPositionTimestamp=1795168800"
	if lines[0] != wantFirst {
		t.Errorf("first call\n got %s\nwant %s", lines[0], wantFirst)
	}
	if want := "lambda DeleteEventSourceMapping UUID=" + uuid; lines[len(lines)-3] != want {
		t.Errorf("call = %s, want %s", lines[len(lines)-3], want)
	}
}

func TestLambdaValidation(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{Settle: -1})
	f.AddFunction("fanout")
	c := lambdaClient(f.URL)
	tests := []struct {
		name string
		in   lambda.CreateEventSourceMappingInput
		want any
	}{
		{"unknown function", lambda.CreateEventSourceMappingInput{FunctionName: aws.String("nope"), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionLatest}, &ltypes.ResourceNotFoundException{}},
		{"no starting position", lambda.CreateEventSourceMappingInput{FunctionName: aws.String("fanout"), EventSourceArn: aws.String(streamArn)}, &ltypes.InvalidParameterValueException{}},
		{"AT_TIMESTAMP without timestamp", lambda.CreateEventSourceMappingInput{FunctionName: aws.String("fanout"), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionAtTimestamp}, &ltypes.InvalidParameterValueException{}},
		{"OnSuccess", lambda.CreateEventSourceMappingInput{FunctionName: aws.String("fanout"), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionLatest,
			DestinationConfig: &ltypes.DestinationConfig{OnSuccess: &ltypes.OnSuccess{Destination: aws.String("arn:aws:sqs:us-east-1:000000000000:q")}}}, &ltypes.InvalidParameterValueException{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateEventSourceMapping(ctx, &tt.in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an API error", err)
			}
			if want := tt.want.(smithy.APIError).ErrorCode(); apiErr.ErrorCode() != want {
				t.Errorf("code = %s, want %s (%v)", apiErr.ErrorCode(), want, err)
			}
		})
	}
}

func TestLambdaListPages(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{Settle: -1})
	f.AddFunction("fanout")
	c := lambdaClient(f.URL)
	for _, q := range []string{"a", "b", "c"} {
		if _, err := c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
			FunctionName: aws.String("fanout:" + q), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionLatest,
		}); err != nil {
			t.Fatal(err)
		}
	}
	p := lambda.NewListEventSourceMappingsPaginator(c, &lambda.ListEventSourceMappingsInput{EventSourceArn: aws.String(streamArn), MaxItems: aws.Int32(2)})
	var fns []string
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range page.EventSourceMappings {
			fns = append(fns, aws.ToString(m.FunctionArn))
			if aws.ToString(m.State) != "Enabled" {
				t.Errorf("state %s with Settle -1", aws.ToString(m.State))
			}
		}
	}
	if pages != 2 || len(fns) != 3 || !strings.HasSuffix(fns[2], ":fanout:c") {
		t.Errorf("pages = %d, functions = %v", pages, fns)
	}
	out, err := c.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("fanout:b")})
	if err != nil || len(out.EventSourceMappings) != 1 {
		t.Fatalf("list by qualified name: %v, %d mappings", err, len(out.EventSourceMappings))
	}
}
