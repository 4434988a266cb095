package infra

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/pattern"
)

// eventsV2Properties are the documented properties of the AWS::EventsV2
// shapes the template uses (CloudFormation template reference, 2026), with
// the required ones marked. cfn-lint 1.51 predates the resource types, so
// this is what checks them.
var eventsV2Properties = map[string]map[string]bool{
	"AWS::EventsV2::EventBus": {
		"Description": false, "EncryptionConfiguration": false, "Name": false, "StorageConfiguration": false, "Tags": false,
	},
	"AWS::EventsV2::Subscriber": {
		"BatchConfiguration": false, "Description": false, "EventBusArn": true, "FilterConfiguration": false,
		"InvokeConfiguration": true, "LogConfiguration": false, "Name": true, "OnFailureConfiguration": false,
		"PointInTimeConfiguration": false, "ResumePosition": false, "RetryPolicy": false, "StartingPosition": false,
		"State": false, "Tags": false, "Transformer": false, "Type": false,
	},
	"FilterConfiguration": {"Filters": true, "Language": false},
	"Filter":              {"Pattern": true, "Scope": true},
	"InvokeConfiguration": {
		"RoleArn": true, "TargetArn": true, "LambdaParameters": false, "SqsParameters": false, "SnsParameters": false,
		"KinesisParameters": false, "StepFunctionsParameters": false, "HttpParameters": false,
		"UniversalTargetParameters": false, "EventBusV2Parameters": false,
	},
	"RetryPolicy":            {"MaxEventAgeInSeconds": false, "MaxRetryAttempts": false, "RetryStrategy": false},
	"OnFailureConfiguration": {"Arn": true},
	"SqsParameters":          {"MessageGroupId": false, "MessageDeduplicationId": false},
	"StorageConfiguration":   {"RetentionPeriodInDays": false},
}

// shapeProblems lists the properties of v that the shape does not have,
// and the required ones it lacks.
func shapeProblems(where, shape string, v any) []string {
	props, known := eventsV2Properties[shape]
	if !known {
		return []string{where + ": no documented shape " + shape}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return []string{where + ": not a mapping"}
	}
	var out []string
	for k := range m {
		if _, ok := props[k]; !ok {
			out = append(out, where+": "+shape+" has no property "+k)
		}
	}
	for k, required := range props {
		if _, ok := m[k]; required && !ok {
			out = append(out, where+": "+shape+" needs "+k)
		}
	}
	slices.Sort(out)
	return out
}

func TestShapeProblemsCatchMistakes(t *testing.T) {
	got := shapeProblems("x", "Filter", map[string]any{"Pattern": "{}", "Scop": "DATA"})
	want := []string{"x: Filter has no property Scop", "x: Filter needs Scope"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shapeProblems = %q, want %q", got, want)
	}
}

// TestOrderedBusResources: with BusKind=ordered the stack has the ordered
// bus and a FIFO subscriber instead of the classic bus, archive and rule;
// both resources use documented properties only, the subscriber's filter
// is a valid DatabaseEvent pattern a subscriber can run, and it delivers
// to FIFO queues through a role that EventBridge may assume.
func TestOrderedBusResources(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	r := newRenderer(t, tpl, map[string]string{"BusKind": "ordered"})
	for _, classic := range []string{"EventBus", "EventArchive", "WelcomeEmailRule", "WelcomeEmailQueue", "WelcomeEmailQueuePolicy", "WelcomeEmailFailedInvocationsAlarm"} {
		if _, exists := r.resource(t, classic); exists {
			t.Errorf("%s exists on the ordered bus", classic)
		}
	}
	bus, exists := r.resource(t, "OrderedEventBus")
	if !exists {
		t.Fatal("no OrderedEventBus with BusKind=ordered")
	}
	problems := shapeProblems("OrderedEventBus", "AWS::EventsV2::EventBus", bus)
	problems = append(problems, shapeProblems("OrderedEventBus.StorageConfiguration", "StorageConfiguration", bus["StorageConfiguration"])...)
	if bus["Name"] != "walbridge" {
		t.Errorf("bus Name = %v", bus["Name"])
	}

	sub, exists := r.resource(t, "WelcomeEmailSubscriber")
	if !exists {
		t.Fatal("no WelcomeEmailSubscriber with BusKind=ordered")
	}
	problems = append(problems, shapeProblems("WelcomeEmailSubscriber", "AWS::EventsV2::Subscriber", sub)...)
	if sub["Type"] != "FIFO" {
		t.Errorf("subscriber Type = %v, want FIFO (UNORDERED loses each row's order)", sub["Type"])
	}
	if sub["EventBusArn"] != refPlaceholder("OrderedEventBus") {
		t.Errorf("subscriber EventBusArn = %v", sub["EventBusArn"])
	}
	if name := scalarString(sub["Name"]); name == "" || len(name) > 64 {
		t.Errorf("subscriber Name %q: want 1 to 64 characters whatever the stack name", name)
	}
	fc := sub["FilterConfiguration"]
	problems = append(problems, shapeProblems("FilterConfiguration", "FilterConfiguration", fc)...)
	filters := asSlice(dig(fc, "Filters"))
	if len(filters) < 1 || len(filters) > 50 {
		t.Errorf("%d filters, want 1 to 50", len(filters))
	}
	for _, f := range filters {
		problems = append(problems, shapeProblems("Filter", "Filter", f)...)
		if s := dig(f, "Scope"); s != "DATA" {
			t.Errorf("filter Scope = %v, want DATA (the PutEvents envelope the pattern is written against)", s)
		}
		text := scalarString(dig(f, "Pattern"))
		if len(text) > 4096 {
			t.Errorf("filter pattern is %d characters, the limit is 4096", len(text))
		}
		if errs := pattern.CheckJSON([]byte(text), pattern.CheckOptions{DetailType: "DatabaseEvent"}); len(errs) > 0 {
			t.Errorf("filter pattern %s: %v", text, errs)
		}
		if strings.Contains(text, `"wildcard"`) {
			t.Errorf("filter pattern %s uses wildcard, which subscriber filters lack", text)
		}
		rule := newRenderer(t, tpl, nil)
		classic, _ := rule.resource(t, "WelcomeEmailRule")
		if got, want := renderPattern(t, r, dig(f, "Pattern")), renderPattern(t, rule, classic["EventPattern"]); !sameJSON(t, got, want) {
			t.Errorf("subscriber filter %s differs from the classic rule's pattern %s", got, want)
		}
	}
	inv := sub["InvokeConfiguration"]
	problems = append(problems, shapeProblems("InvokeConfiguration", "InvokeConfiguration", inv)...)
	problems = append(problems, shapeProblems("SqsParameters", "SqsParameters", dig(inv, "SqsParameters"))...)
	problems = append(problems, shapeProblems("RetryPolicy", "RetryPolicy", sub["RetryPolicy"])...)
	problems = append(problems, shapeProblems("OnFailureConfiguration", "OnFailureConfiguration", sub["OnFailureConfiguration"])...)
	for _, p := range problems {
		t.Error(p)
	}
	if dig(inv, "TargetArn") != attPlaceholder("WelcomeEmailOrderedQueue", "Arn") ||
		dig(sub, "OnFailureConfiguration", "Arn") != attPlaceholder("WelcomeEmailOrderedDeadLetterQueue", "Arn") {
		t.Errorf("subscriber target %v, on failure %v", dig(inv, "TargetArn"), dig(sub, "OnFailureConfiguration", "Arn"))
	}
	if g := dig(inv, "SqsParameters", "MessageGroupId"); !strings.Contains(scalarString(g), "SystemMetadata.EventGroupId") {
		t.Errorf("MessageGroupId = %v, want the event group (the row)", g)
	}
	for _, q := range []string{"WelcomeEmailOrderedQueue", "WelcomeEmailOrderedDeadLetterQueue"} {
		props, _ := r.resource(t, q)
		name := scalarString(props["QueueName"])
		if props["FifoQueue"] != true || !strings.HasSuffix(name, ".fifo") || len(name) > 80 {
			t.Errorf("%s: FifoQueue %v, QueueName %q: want a FIFO queue, a name ending .fifo of at most 80 characters", q, props["FifoQueue"], name)
		}
	}
	if dig(inv, "RoleArn") != attPlaceholder("WelcomeEmailDeliveryRole", "Arn") {
		t.Errorf("RoleArn = %v", dig(inv, "RoleArn"))
	}
	role, _ := r.resource(t, "WelcomeEmailDeliveryRole")
	trust := statements(role["AssumeRolePolicyDocument"])
	if len(trust) != 1 || !reflect.DeepEqual(trust[0]["Principal"], map[string]any{"Service": "events.amazonaws.com"}) ||
		dig(trust[0], "Condition", "StringEquals", "aws:SourceAccount") == nil {
		t.Errorf("delivery role trust = %v, want events.amazonaws.com from this account", trust)
	}
	want := map[string][]string{"sqs:SendMessage": {
		attPlaceholder("WelcomeEmailOrderedDeadLetterQueue", "Arn"), attPlaceholder("WelcomeEmailOrderedQueue", "Arn"),
	}}
	if got := grants(t, tpl, "WelcomeEmailDeliveryRole", map[string]string{"BusKind": "ordered"}); !reflect.DeepEqual(got, want) {
		t.Errorf("delivery role grants %v, want %v", got, want)
	}
}

// TestOrderedBusNeedsAName: the template's Rules refuse BusKind=ordered
// with EventBusName=default, and accept every other combination.
func TestOrderedBusNeedsAName(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for _, tt := range []struct {
		kind, bus string
		ok        bool
	}{
		{"ordered", "default", false},
		{"ordered", "walbridge", true},
		{"classic", "default", true},
		{"classic", "walbridge", true},
	} {
		if ok := rulesAccept(t, tpl, map[string]string{"BusKind": tt.kind, "EventBusName": tt.bus}); ok != tt.ok {
			t.Errorf("BusKind=%s EventBusName=%s: accepted %v, want %v", tt.kind, tt.bus, ok, tt.ok)
		}
	}
}

// TestRecordFormatV2NeedsParallelizationFactor1: v2 records hold many rows
// under one partition key, so the Rules refuse them with batches of a
// shard processed side by side.
func TestRecordFormatV2NeedsParallelizationFactor1(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for _, tt := range []struct {
		format, factor string
		ok             bool
	}{
		{"v1", "1", true}, {"v1", "4", true}, {"v2", "1", true}, {"v2", "2", false}, {"v2", "10", false},
	} {
		if ok := rulesAccept(t, tpl, map[string]string{"RecordFormat": tt.format, "ParallelizationFactor": tt.factor}); ok != tt.ok {
			t.Errorf("RecordFormat=%s ParallelizationFactor=%s: accepted %v, want %v", tt.format, tt.factor, ok, tt.ok)
		}
	}
}

// TestRecordFormatV2SizesTheFunction: v2 batches hold up to 500 changes
// per record, and the function gets the time, memory and PutEvents
// concurrency for them.
func TestRecordFormatV2SizesTheFunction(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for _, tt := range []struct {
		format, memory, timeout, concurrency string
	}{{"v1", "256", "60", "4"}, {"v2", "512", "300", "16"}} {
		r := newRenderer(t, tpl, map[string]string{"RecordFormat": tt.format})
		props, ok := r.resource(t, "FanoutFunction")
		if !ok {
			t.Fatal("no FanoutFunction")
		}
		env := asMap(asMap(props["Environment"])["Variables"])
		got := [3]string{fmt.Sprint(props["MemorySize"]), fmt.Sprint(props["Timeout"]), fmt.Sprint(env["WALBRIDGE_PUBLISH_CONCURRENCY"])}
		if got != [3]string{tt.memory, tt.timeout, tt.concurrency} {
			t.Errorf("RecordFormat=%s: memory, timeout, concurrency %v, want %s %s %s", tt.format, got, tt.memory, tt.timeout, tt.concurrency)
		}
	}
}

// rulesAccept evaluates the template's Rules with these parameters.
func rulesAccept(t *testing.T, tpl *template, params map[string]string) bool {
	t.Helper()
	r := newRenderer(t, tpl, params)
	ok := true
	for name, rule := range asMap(tpl.Raw["Rules"]) {
		applies := true
		if c, has := asMap(rule)["RuleCondition"]; has {
			var err error
			if applies, err = r.condExpr(c); err != nil {
				t.Fatalf("rule %s: %v", name, err)
			}
		}
		for _, a := range asSlice(asMap(rule)["Assertions"]) {
			holds, err := r.condExpr(asMap(a)["Assert"])
			if err != nil {
				t.Fatalf("rule %s: %v", name, err)
			}
			if applies && !holds {
				ok = false
			}
		}
	}
	return ok
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}
