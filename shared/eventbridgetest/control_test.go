package eventbridgetest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
)

func eventsClient(t *testing.T, url string) *eventbridge.Client {
	return Client(t, url)
}

const usersPattern = `{"source":["walbridge.database"],"detail":{"table":["users"]}}`

func queueTarget(id, queue string) ebtypes.Target {
	return ebtypes.Target{Id: aws.String(id), Arn: aws.String("arn:aws:sqs:us-east-1:000000000000:" + queue)}
}

func TestControlBusRulesTargets(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	c := eventsClient(t, f.URL)

	bus, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("walbridge")})
	if err != nil {
		t.Fatalf("CreateEventBus: %v", err)
	}
	if got, want := aws.ToString(bus.EventBusArn), "arn:aws:events:us-east-1:000000000000:event-bus/walbridge"; got != want {
		t.Errorf("EventBusArn = %s, want %s", got, want)
	}
	for _, name := range []string{"walbridge", "default"} {
		_, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
		var exists *ebtypes.ResourceAlreadyExistsException
		if !errors.As(err, &exists) {
			t.Errorf("CreateEventBus %s again: err = %v, want ResourceAlreadyExistsException", name, err)
		}
	}

	// A rule put twice is updated, not doubled; the bus may be given by ARN.
	for _, p := range []string{`{"source":["x"]}`, usersPattern} {
		out, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("users"), EventBusName: bus.EventBusArn, EventPattern: aws.String(p)})
		if err != nil {
			t.Fatalf("PutRule: %v", err)
		}
		if got, want := aws.ToString(out.RuleArn), "arn:aws:events:us-east-1:000000000000:rule/walbridge/users"; got != want {
			t.Errorf("RuleArn = %s, want %s", got, want)
		}
	}
	def, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("nightly"), ScheduleExpression: aws.String("rate(1 day)")})
	if err != nil || aws.ToString(def.RuleArn) != "arn:aws:events:us-east-1:000000000000:rule/nightly" {
		t.Fatalf("PutRule on the default bus: %v, %+v", err, def)
	}

	// A target put again with the same Id is replaced.
	for _, queue := range []string{"old", "users"} {
		out, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("users"), EventBusName: aws.String("walbridge"), Targets: []ebtypes.Target{queueTarget("queue", queue)}})
		if err != nil || out.FailedEntryCount != 0 {
			t.Fatalf("PutTargets: %v, %+v", err, out)
		}
	}

	if got, want := f.Buses(), []string{"default", "walbridge"}; !reflect.DeepEqual(got, want) {
		t.Errorf("buses %v, want %v", got, want)
	}
	want := []Rule{{Name: "users", EventBus: "walbridge", EventPattern: usersPattern, State: "ENABLED",
		Targets: []Target{{ID: "queue", Arn: "arn:aws:sqs:us-east-1:000000000000:users"}}}}
	if got := f.Rules("walbridge"); !reflect.DeepEqual(got, want) {
		t.Errorf("rules on walbridge\n got %+v\nwant %+v", got, want)
	}
	if got := f.Rules("default"); len(got) != 1 || got[0].ScheduleExpression != "rate(1 day)" {
		t.Errorf("rules on default: %+v", got)
	}
	lines := f.Log.Lines()
	for i, want := range map[int]string{
		0: "events CreateEventBus Name=walbridge",
		4: "events PutRule EventBusName=arn:aws:events:us-east-1:000000000000:event-bus/walbridge EventPattern=" + usersPattern + " Name=users",
		7: "events PutTargets EventBusName=walbridge Rule=users Targets.0.Arn=arn:aws:sqs:us-east-1:000000000000:users Targets.0.Id=queue",
	} {
		if lines[i] != want {
			t.Errorf("call %d\n got %s\nwant %s", i, lines[i], want)
		}
	}
}

func TestControlValidation(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	// The SDK retries LimitExceededException as a throttle: once is enough.
	c := Client(t, f.URL, func(o *eventbridge.Options) {
		o.BaseEndpoint, o.RetryMaxAttempts = aws.String(f.URL), 1
	})
	if _, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("bus")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("full"), EventBusName: aws.String("bus"), EventPattern: aws.String(usersPattern)}); err != nil {
		t.Fatal(err)
	}
	var five []ebtypes.Target
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		five = append(five, queueTarget(id, id))
	}
	if _, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("full"), EventBusName: aws.String("bus"), Targets: five}); err != nil {
		t.Fatal(err)
	}
	rule := func(name, bus, pattern string) func() error {
		return func() error {
			in := &eventbridge.PutRuleInput{Name: aws.String(name), EventBusName: aws.String(bus)}
			if pattern != "" {
				in.EventPattern = aws.String(pattern)
			}
			_, err := c.PutRule(ctx, in)
			return err
		}
	}
	targets := func(rule string, ts ...ebtypes.Target) func() error {
		return func() error {
			_, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule), EventBusName: aws.String("bus"), Targets: ts})
			return err
		}
	}
	tests := []struct {
		name, code string
		call       func() error
	}{
		{"bus name with a space", "ValidationException", func() error {
			_, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("my bus")})
			return err
		}},
		{"rule name too long", "ValidationException", rule(strings.Repeat("r", 65), "bus", usersPattern)},
		{"rule name with a slash", "ValidationException", rule("a/b", "bus", usersPattern)},
		{"empty bus name", "ValidationException", rule("r", "", usersPattern)},
		{"bus that does not exist", "ResourceNotFoundException", rule("r", "nope", usersPattern)},
		{"no pattern or schedule", "ValidationException", rule("r", "bus", "")},
		{"schedule on a custom bus", "ValidationException", func() error {
			_, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("r"), EventBusName: aws.String("bus"), ScheduleExpression: aws.String("rate(1 day)")})
			return err
		}},
		{"pattern not JSON", "InvalidEventPatternException", rule("r", "bus", `{"source":`)},
		{"pattern an array", "InvalidEventPatternException", rule("r", "bus", `["x"]`)},
		{"pattern leaf a string", "InvalidEventPatternException", rule("r", "bus", `{"source":"x"}`)},
		{"pattern empty array", "InvalidEventPatternException", rule("r", "bus", `{"detail":{"table":[]}}`)},
		{"targets of a rule that does not exist", "ResourceNotFoundException", targets("nope", queueTarget("q", "q"))},
		{"target ARN malformed", "ValidationException", targets("full", ebtypes.Target{Id: aws.String("a"), Arn: aws.String("queue-url")})},
		{"target ARN empty", "ValidationException", targets("full", ebtypes.Target{Id: aws.String("a"), Arn: aws.String("")})},
		{"sixth target", "LimitExceededException", targets("full", queueTarget("f", "f"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apiErr smithy.APIError
			if err := tt.call(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.code {
				t.Errorf("err = %v, want %s", err, tt.code)
			}
		})
	}
	if got := f.Rules("bus"); len(got) != 1 || len(got[0].Targets) != 5 {
		t.Errorf("refused calls changed the rules: %+v", got)
	}
}

func TestControlFailures(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{RejectTarget: func(rule string, t Target) (string, string) {
		if strings.HasSuffix(t.Arn, ":busy") {
			return "ConcurrentModificationException", "rule " + rule + " is being modified"
		}
		return "", ""
	}})
	c := eventsClient(t, f.URL)
	if _, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(usersPattern)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("r"), Targets: []ebtypes.Target{queueTarget("ok", "ok"), queueTarget("busy", "busy")}})
	if err != nil {
		t.Fatalf("PutTargets: %v", err)
	}
	if out.FailedEntryCount != 1 || len(out.FailedEntries) != 1 || aws.ToString(out.FailedEntries[0].TargetId) != "busy" ||
		aws.ToString(out.FailedEntries[0].ErrorCode) != "ConcurrentModificationException" {
		t.Errorf("partial failure answered %+v", out)
	}
	if got := f.Rules("default")[0].Targets; len(got) != 1 || got[0].ID != "ok" {
		t.Errorf("targets %+v, want only ok", got)
	}

	f.Fail("PutRule", "AccessDeniedException", "not allowed")
	_, err = c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(usersPattern)})
	var denied *ebtypes.AccessDeniedException
	if !errors.As(err, &denied) || denied.ErrorMessage() != "not allowed" {
		t.Errorf("failed PutRule: err = %v, want AccessDeniedException", err)
	}
	f.Fail("PutRule", "", "")
	if _, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(usersPattern)}); err != nil {
		t.Errorf("PutRule after Fail was cleared: %v", err)
	}
	if n := len(f.Log.Calls()); n != 4 {
		t.Errorf("%d calls logged, want 4 (failed ones too)", n)
	}
}
