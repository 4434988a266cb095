package cfnrules

import (
	"errors"
	"reflect"
	"testing"

	"github.com/walbridge/walbridge/shared/pattern"
)

const testTemplate = `
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  EventSource:
    Type: String
    Default: walbridge
  ResourceName:
    Type: String
  CreateBus:
    Type: String
    Default: "true"
Conditions:
  CreateEventBus: !Equals [!Ref CreateBus, "true"]
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: walbridge
  UsersInsertRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !If [CreateEventBus, !Ref Bus, default]
      EventPattern:
        source: [!Ref EventSource]
        detail-type: [DatabaseEvent]
        detail:
          operation: [insert]
          seq: [{numeric: [">=", 0]}]
      Targets:
        - Id: queue
          Arn: !GetAtt WelcomeQueue.Arn
        - Id: topic
          Arn: {"Ref": "Topic"}
        - Id: long-form
          Arn: {"Fn::GetAtt": ["WelcomeQueue", "Arn"]}
        - Id: literal
          Arn: arn:aws:sqs:us-east-1:123456789012:elsewhere
  ResourceRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: arn:aws:events:us-east-1:123456789012:event-bus/walbridge
      State: DISABLED
      EventPattern:
        resources: [!Ref ResourceName]
        detail:
          schema: [!Sub "${EventSource}-${!Literal}"]
  NightlyRule:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 day)
  StringRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: walbridge
      EventPattern: '{"detail":{"table":["users"]}}'
  Handler:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        OnUpdate:
          Type: EventBridgeRule
          Properties:
            Pattern:
              detail:
                operation: [update]
            Target:
              Id: handler-target
        Hourly:
          Type: Schedule
          Properties:
            Schedule: rate(1 hour)
  WelcomeQueue:
    Type: AWS::SQS::Queue
  Topic:
    Type: AWS::SNS::Topic
`

func TestTemplateRules(t *testing.T) {
	queue := Target{ID: "queue", Resource: "WelcomeQueue", ResourceType: "AWS::SQS::Queue"}
	targets := []Target{
		queue,
		{ID: "topic", Resource: "Topic", ResourceType: "AWS::SNS::Topic"},
		{ID: "long-form", Resource: "WelcomeQueue", ResourceType: "AWS::SQS::Queue"},
		{ID: "literal", Arn: "arn:aws:sqs:us-east-1:123456789012:elsewhere"},
	}
	handler := []Target{{ID: "handler-target", Resource: "Handler", ResourceType: "AWS::Serverless::Function"}}
	deployTime := func(path, fn string) *pattern.FieldError {
		return &pattern.FieldError{Path: path, Msg: "uses CloudFormation intrinsic " + fn + ", whose value is only known at deploy time"}
	}

	cases := []struct {
		name string
		opts Options
		want []Rule
	}{
		{
			name: "zero options resolve nothing",
			want: []Rule{
				{ID: "UsersInsertRule", Err: deployTime("source", "!Ref"), EventBusIntrinsic: "!If", Targets: targets},
				{ID: "ResourceRule", Err: deployTime("resources", "!Ref"), EventBus: "arn:aws:events:us-east-1:123456789012:event-bus/walbridge", State: "DISABLED"},
				{ID: "StringRule", Pattern: []byte(`{"detail":{"table":["users"]}}`), EventBus: "walbridge"},
				{ID: "Handler.Events.OnUpdate", Pattern: []byte(`{"detail":{"operation":["update"]}}`), Targets: handler},
			},
		},
		{
			name: "defaults, and a parameter without one",
			opts: Options{Defaults: true},
			want: []Rule{
				{ID: "UsersInsertRule", Pattern: []byte(`{"source":["walbridge"],"detail-type":["DatabaseEvent"],"detail":{"operation":["insert"],"seq":[{"numeric":[">=",0]}]}}`), EventBusIntrinsic: "!If", Targets: targets},
				{ID: "ResourceRule", Err: &pattern.FieldError{Path: "resources", Msg: "uses !Ref ResourceName: parameter ResourceName has no Default and no value was given"}, EventBus: "arn:aws:events:us-east-1:123456789012:event-bus/walbridge", State: "DISABLED"},
				{ID: "StringRule", Pattern: []byte(`{"detail":{"table":["users"]}}`), EventBus: "walbridge"},
				{ID: "Handler.Events.OnUpdate", Pattern: []byte(`{"detail":{"operation":["update"]}}`), Targets: handler},
			},
		},
		{
			name: "params over defaults, Fn::Sub",
			opts: Options{Params: map[string]string{"EventSource": "dev", "ResourceName": "orders-db"}, Defaults: true},
			want: []Rule{
				{ID: "UsersInsertRule", Pattern: []byte(`{"source":["dev"],"detail-type":["DatabaseEvent"],"detail":{"operation":["insert"],"seq":[{"numeric":[">=",0]}]}}`), EventBusIntrinsic: "!If", Targets: targets},
				{ID: "ResourceRule", Pattern: []byte(`{"resources":["orders-db"],"detail":{"schema":["dev-${Literal}"]}}`), EventBus: "arn:aws:events:us-east-1:123456789012:event-bus/walbridge", State: "DISABLED"},
				{ID: "StringRule", Pattern: []byte(`{"detail":{"table":["users"]}}`), EventBus: "walbridge"},
				{ID: "Handler.Events.OnUpdate", Pattern: []byte(`{"detail":{"operation":["update"]}}`), Targets: handler},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Rules([]byte(testTemplate), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d rules, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tc.want[i]) {
					g, w := got[i], tc.want[i]
					t.Errorf("rule %d:\n got pattern %s, err %v\nwant pattern %s, err %v\n got %+v\nwant %+v",
						i, g.Pattern, g.Err, w.Pattern, w.Err, g, w)
				}
			}
		})
	}
}

func TestTemplateRulesUnresolvable(t *testing.T) {
	tmpl := `
Resources:
  Q:
    Type: AWS::SQS::Queue
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        detail:
          table: [!GetAtt Q.QueueName]
          schema: [!Ref Q]
`
	rules, err := Rules([]byte(tmpl), Options{Params: map[string]string{"AWS::Region": "us-east-1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &pattern.FieldError{Path: "detail.table", Msg: "uses CloudFormation intrinsic !GetAtt, whose value is only known at deploy time"}
	if len(rules) != 1 || !reflect.DeepEqual(rules[0].Err, want) {
		t.Fatalf("got %+v, want one rule with error %v", rules, want)
	}
}

func TestTemplateRulesJSONAndNotTemplates(t *testing.T) {
	js := `{"Resources": {"R": {"Type": "AWS::Events::Rule", "Properties": {
		"EventPattern": {"detail": {"schema": [{"Fn::Sub": "${AWS::Region}"}]}},
		"Targets": [{"Id": "t", "Arn": {"Fn::GetAtt": ["Missing", "Arn"]}}]}}}}`
	rules, err := Rules([]byte(js), Options{Params: map[string]string{"AWS::Region": "eu-west-1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{ID: "R", Pattern: []byte(`{"detail":{"schema":["eu-west-1"]}}`), Targets: []Target{{ID: "t"}}}
	if len(rules) != 1 || !reflect.DeepEqual(rules[0], want) {
		t.Fatalf("got %+v, want %+v", rules, want)
	}

	for _, doc := range []string{`{"detail": {"table": ["users"]}}`, "- a\n- b\n", "", "Resources: [1]"} {
		if _, err := Rules([]byte(doc), Options{}); !errors.Is(err, ErrNotTemplate) {
			t.Errorf("%q: err = %v, want ErrNotTemplate", doc, err)
		}
	}
	if _, err := Rules([]byte("a: [b"), Options{}); err == nil || errors.Is(err, ErrNotTemplate) {
		t.Errorf("broken YAML: err = %v, want a parse error", err)
	}
}

func TestYAMLPattern(t *testing.T) {
	cases := []struct {
		name, doc, want string
		wantErr         *pattern.FieldError
	}{
		{"bare", "detail-type: [DatabaseEvent]\ndetail:\n  seq: [{numeric: [\">=\", 0x10]}]\n", `{"detail-type":["DatabaseEvent"],"detail":{"seq":[{"numeric":[">=",16]}]}}`, nil},
		{"EventPattern object", "Name: r\nEventPattern:\n  source: [a]\n", `{"source":["a"]}`, nil},
		{"EventPattern string", `{"Name": "r", "EventPattern": "{\"source\":[\"a\"]}"}`, `{"source":["a"]}`, nil},
		{"null and booleans", "detail:\n  x: [null, yes, true]\n", `{"detail":{"x":[null,"yes",true]}}`, nil},
		{"intrinsic", "detail:\n  table: [!Ref T]\n", "", &pattern.FieldError{Path: "detail.table", Msg: "uses CloudFormation intrinsic !Ref, whose value is only known at deploy time"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := YAMLPattern([]byte(tc.doc))
			if tc.wantErr != nil {
				var fe *pattern.FieldError
				if !errors.As(err, &fe) || *fe != *tc.wantErr {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

const subscriberTemplate = `
Parameters:
  EventSource:
    Type: String
    Default: walbridge
Resources:
  Bus:
    Type: AWS::EventsV2::EventBus
    Properties:
      Name: cdc
  Orders:
    Type: AWS::EventsV2::Subscriber
    Properties:
      Name: orders
      EventBusArn: !Ref Bus
      Type: FIFO
      FilterConfiguration:
        Language: EVENT_BRIDGE_PATTERN
        Filters:
          - Scope: DATA
            Pattern: !Sub '{"source":["${EventSource}"],"detail":{"table":["orders"]}}'
          - Scope: SYSTEM_METADATA
            Pattern: '{"EventGroupId":[{"prefix":"public.orders/"}]}'
      InvokeConfiguration:
        TargetArn: !GetAtt Queue.Arn
        RoleArn: arn:aws:iam::123456789012:role/deliver
  Everything:
    Type: AWS::EventsV2::Subscriber
    Properties:
      Name: all
      EventBusArn: arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy
      InvokeConfiguration:
        TargetArn: arn:aws:lambda:us-east-1:123456789012:function:all
        RoleArn: arn:aws:iam::123456789012:role/deliver
  Queue:
    Type: AWS::SQS::Queue
`

func TestSubscribers(t *testing.T) {
	got, err := Subscribers([]byte(subscriberTemplate), Options{Defaults: true})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Resource: "Queue", ResourceType: "AWS::SQS::Queue"}
	want := []Filter{
		{Subscriber: "Orders", Index: 0, Count: 2, Scope: "DATA", Language: "EVENT_BRIDGE_PATTERN", Type: "FIFO", EventBusIntrinsic: "!Ref", Target: target,
			Pattern: []byte(`{"source":["walbridge"],"detail":{"table":["orders"]}}`)},
		{Subscriber: "Orders", Index: 1, Count: 2, Scope: "SYSTEM_METADATA", Language: "EVENT_BRIDGE_PATTERN", Type: "FIFO", EventBusIntrinsic: "!Ref", Target: target,
			Pattern: []byte(`{"EventGroupId":[{"prefix":"public.orders/"}]}`)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Subscribers =\n%+v\nwant\n%+v", got, want)
	}
	if id := got[1].ID(); id != "Orders.Filters[1]" {
		t.Errorf("ID = %q", id)
	}
	// Without values for parameters the !Sub pattern is a deploy-time value.
	got, err = Subscribers([]byte(subscriberTemplate), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Err == nil || got[0].Pattern != nil || got[1].Err != nil {
		t.Errorf("unresolved: %+v", got)
	}
	if _, err := Subscribers([]byte("a: 1\n"), Options{}); !errors.Is(err, ErrNotTemplate) {
		t.Errorf("not a template: %v", err)
	}
}

func TestFunctions(t *testing.T) {
	tmpl := []byte(`
Globals:
  Function:
    Runtime: nodejs24.x
    Timeout: 10
Resources:
  TsFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: dist/
      Handler: handler.handler
  GoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../../bin/handlers/x/
      Handler: bootstrap
      Runtime: provided.al2023
      Timeout: 30
  Inline:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.13
      Handler: index.handler
      Code:
        ZipFile: "def handler(e, c): pass"
  FromS3:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {Bucket: b, Key: k}
      Handler: h
  Queue:
    Type: AWS::SQS::Queue
`)
	got, err := Functions(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	want := []Function{
		{ID: "TsFunction", Type: "AWS::Serverless::Function", CodeURI: "dist/", Runtime: "nodejs24.x", Handler: "handler.handler", Timeout: "10"},
		{ID: "GoFunction", Type: "AWS::Serverless::Function", CodeURI: "../../bin/handlers/x/", Runtime: "provided.al2023", Handler: "bootstrap", Timeout: "30"},
		{ID: "Inline", Type: "AWS::Lambda::Function", Runtime: "python3.13", Handler: "index.handler", Inline: true},
		{ID: "FromS3", Type: "AWS::Serverless::Function", Runtime: "nodejs24.x", Handler: "h", Timeout: "10"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Functions:\n got %+v\nwant %+v", got, want)
	}
	if _, err := Functions([]byte(`{"a": 1}`)); !errors.Is(err, ErrNotTemplate) {
		t.Errorf("not a template: %v", err)
	}
}
