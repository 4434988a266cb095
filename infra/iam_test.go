package infra

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// starResourceActions are the only actions an Allow statement may grant on
// Resource "*", each with the condition key that must then narrow it. AWS
// requires "*" for them: they have no resource type.
var starResourceActions = map[string]string{
	// CloudWatch metrics are not resources; the namespace is the only scope.
	"cloudwatch:PutMetricData": "cloudwatch:namespace",
}

// allowedServicePrincipals may appear in Allow statements' Principal.
var allowedServicePrincipals = map[string]bool{
	"ec2.amazonaws.com":    true, // capture's instance role
	"lambda.amazonaws.com": true, // fanout's execution role
	"events.amazonaws.com": true, // the example rule's queues
}

// allowedManagedPolicies may be attached to roles. They are AWS managed and
// use Resource "*" inside; see README.md.
var allowedManagedPolicies = map[string]bool{
	"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore": true,
}

var actionPattern = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9]+$`)

type located struct {
	where string
	stmt  map[string]any
}

// collectStatements finds every policy statement in the raw template, in
// any resource, under any key: any mapping with a Statement is a policy
// document. Both branches of an Fn::If are collected.
func collectStatements(raw any) []located {
	var out []located
	walk(raw, nil, func(path []string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		st, ok := m["Statement"]
		if !ok {
			return
		}
		where := strings.Join(path, ".")
		for _, s := range expandIf(st) {
			switch x := s.(type) {
			case []any:
				for _, e := range x {
					for _, e := range expandIf(e) {
						out = append(out, located{where, asMap(e)})
					}
				}
			case map[string]any:
				out = append(out, located{where, x})
			}
		}
	})
	return out
}

// expandIf returns v, or every branch of an Fn::If (recursively), leaving
// out AWS::NoValue.
func expandIf(v any) []any {
	if fn, arg, ok := intrinsic(v); ok {
		switch fn {
		case "Fn::If":
			parts, _ := arg.([]any)
			if len(parts) != 3 {
				return []any{v}
			}
			return append(expandIf(parts[1]), expandIf(parts[2])...)
		case "Ref":
			if arg == "AWS::NoValue" {
				return nil
			}
		}
	}
	return []any{v}
}

// literalStrings returns v as a list of strings when it is a literal string
// or list of literal strings.
func literalStrings(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return []string{x}, true
	case []any:
		var out []string
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// hasStar reports whether a resource value can contain a wildcard: a
// literal or Fn::Sub/Fn::Join text with "*" in it, in any Fn::If branch.
// Ref and Fn::GetAtt values are specific resources.
// s3ObjectPrefix is the one wildcard a resource may have: every object under
// a fixed key prefix of one bucket (the claim check's content-addressed
// values), "${Bucket.Arn}/prefix/*".
var s3ObjectPrefix = regexp.MustCompile(`^\$\{[A-Za-z0-9]+\.Arn\}/[A-Za-z0-9/_-]+/\*$`)

func resourceWildcards(v any) (star bool, partial []string) {
	for _, b := range expandIf(v) {
		if list, ok := b.([]any); ok {
			for _, e := range list {
				s, p := resourceWildcards(e)
				star = star || s
				partial = append(partial, p...)
			}
			continue
		}
		if s, ok := b.(string); ok {
			if s == "*" {
				star = true
			} else if strings.Contains(s, "*") {
				partial = append(partial, s)
			}
			continue
		}
		fn, arg, _ := intrinsic(b)
		switch fn {
		case "Fn::Sub", "Fn::Join":
			walk(arg, nil, func(_ []string, x any) {
				if s, ok := x.(string); ok && strings.Contains(s, "*") {
					partial = append(partial, s)
				}
			})
		}
	}
	return star, partial
}

// statementProblems checks one statement against the rules in README.md:
// no wildcard actions, no Resource "*" beyond starResourceActions (and then
// only with their condition), no Not* elements, no public principals.
// Wildcards in Deny statements only narrow access and are allowed.
func statementProblems(s map[string]any) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
		if _, ok := s[k]; ok {
			add("uses %s", k)
		}
	}
	effect := s["Effect"]
	if effect != "Allow" && effect != "Deny" {
		add("Effect %v is not a literal Allow or Deny", effect)
		return problems
	}
	actions, ok := literalStrings(s["Action"])
	if !ok || len(actions) == 0 {
		add("Action %v is not a literal action or list of actions", s["Action"])
		return problems
	}
	if effect == "Deny" {
		return problems
	}
	for _, a := range actions {
		if !actionPattern.MatchString(a) {
			add("action %q is a wildcard or malformed", a)
		}
	}
	if p, ok := s["Principal"]; ok {
		problems = append(problems, principalProblems(p)...)
	}
	res, hasResource := s["Resource"]
	if !hasResource {
		_, hasPrincipal := s["Principal"]
		if !hasPrincipal || !reflect.DeepEqual(actions, []string{"sts:AssumeRole"}) {
			add("has no Resource")
		}
		return problems
	}
	star, partial := resourceWildcards(res)
	for _, p := range partial {
		if s3ObjectPrefix.MatchString(p) {
			continue // the objects under a fixed prefix of one bucket: S3's own least privilege
		}
		add("resource %q contains a wildcard", p)
	}
	if star {
		cond := asMap(s["Condition"])
		for _, a := range actions {
			key, allowed := starResourceActions[a]
			if !allowed {
				add("grants %s on Resource \"*\"", a)
				continue
			}
			found := false
			for _, op := range cond {
				if _, ok := asMap(op)[key]; ok {
					found = true
				}
			}
			if !found {
				add("grants %s on Resource \"*\" without a %s condition", a, key)
			}
		}
	}
	return problems
}

func principalProblems(p any) []string {
	if p == "*" {
		return []string{`Allow to Principal "*"`}
	}
	var problems []string
	for kind, v := range asMap(p) {
		for _, e := range expandIf(v) {
			vals, ok := literalStrings(e)
			if !ok {
				continue // a Ref or GetAtt names a specific principal
			}
			for _, val := range vals {
				switch {
				case val == "*":
					problems = append(problems, fmt.Sprintf(`Allow to Principal {%s: "*"}`, kind))
				case kind == "Service" && !allowedServicePrincipals[val]:
					problems = append(problems, fmt.Sprintf("service principal %s is not in allowedServicePrincipals", val))
				}
			}
		}
	}
	return problems
}

func TestIAMPolicies(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	found := collectStatements(tpl.Raw)
	perResource := map[string]int{}
	for _, l := range found {
		for _, p := range statementProblems(l.stmt) {
			t.Errorf("%s: statement %v: %s", l.where, l.stmt["Sid"], p)
		}
		parts := strings.SplitN(l.where, ".", 3)
		if len(parts) >= 2 && parts[0] == "Resources" {
			perResource[parts[1]]++
		}
	}
	// Every resource that carries a policy must have been read, so that the
	// walk above cannot silently miss one.
	policyTypes := map[string]int{
		"AWS::IAM::Role": 2, "AWS::IAM::Policy": 1, "AWS::IAM::ManagedPolicy": 1,
		"AWS::SQS::QueuePolicy": 1, "AWS::SNS::TopicPolicy": 1, "AWS::Events::EventBusPolicy": 1,
	}
	for name, res := range tpl.Resources {
		if min, ok := policyTypes[res["Type"].(string)]; ok && perResource[name] < min {
			t.Errorf("%s (%s): found %d policy statements, want at least %d", name, res["Type"], perResource[name], min)
		}
	}
	if len(perResource) < 5 {
		t.Errorf("found policy statements in only %d resources: %v", len(perResource), perResource)
	}

	r := newRenderer(t, tpl, nil)
	walk(tpl.Raw, nil, func(path []string, v any) {
		if len(path) == 0 || path[len(path)-1] != "ManagedPolicyArns" {
			return
		}
		for _, arn := range asSlice(r.mustRender(t, v)) {
			if !allowedManagedPolicies[scalarString(arn)] {
				t.Errorf("%s: managed policy %v is not in allowedManagedPolicies", strings.Join(path, "."), arn)
			}
		}
	})
	for _, name := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		if _, ok := asMap(tpl.Resources[name]["Properties"])["Policies"]; ok {
			t.Errorf("%s uses SAM Policies, which this test cannot read; give it a Role", name)
		}
	}
}

func TestStatementProblemsCatchBadStatements(t *testing.T) {
	ok := func(extra map[string]any) map[string]any {
		s := map[string]any{"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}}}
		for k, v := range extra {
			if v == nil {
				delete(s, k)
			} else {
				s[k] = v
			}
		}
		return s
	}
	tests := []struct {
		name string
		stmt map[string]any
		bad  bool
	}{
		{"scoped", ok(nil), false},
		{"star action", ok(map[string]any{"Action": "*"}), true},
		{"service wildcard", ok(map[string]any{"Action": []any{"kinesis:*"}}), true},
		{"prefix wildcard", ok(map[string]any{"Action": "kinesis:Put*"}), true},
		{"star resource", ok(map[string]any{"Resource": "*"}), true},
		{"star in a branch", ok(map[string]any{"Resource": map[string]any{"Fn::If": []any{"C", "*", map[string]any{"Ref": "X"}}}}), true},
		{"partial wildcard", ok(map[string]any{"Resource": map[string]any{"Fn::Sub": "arn:aws:kinesis:${AWS::Region}:${AWS::AccountId}:stream/*"}}), true},
		{"NotAction", ok(map[string]any{"NotAction": "iam:*", "Action": nil}), true},
		{"NotResource", ok(map[string]any{"NotResource": "x"}), true},
		{"no resource", ok(map[string]any{"Resource": nil}), true},
		{"intrinsic action", ok(map[string]any{"Action": map[string]any{"Ref": "A"}}), true},
		{"metrics without condition", ok(map[string]any{"Action": "cloudwatch:PutMetricData", "Resource": "*"}), true},
		{"metrics with namespace", ok(map[string]any{"Action": "cloudwatch:PutMetricData", "Resource": "*",
			"Condition": map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": "walbridge"}}}), false},
		{"metrics and more on star", ok(map[string]any{"Action": []any{"cloudwatch:PutMetricData", "kinesis:ListStreams"}, "Resource": "*",
			"Condition": map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": "walbridge"}}}), true},
		{"public principal", ok(map[string]any{"Principal": "*"}), true},
		{"public AWS principal", ok(map[string]any{"Principal": map[string]any{"AWS": "*"}}), true},
		{"unknown service", ok(map[string]any{"Principal": map[string]any{"Service": "s3.amazonaws.com"}}), true},
		{"assume role", map[string]any{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": map[string]any{"Service": "lambda.amazonaws.com"}}, false},
		{"deny wildcard", map[string]any{"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "x"}, false},
		{"bad effect", ok(map[string]any{"Effect": map[string]any{"Ref": "E"}}), true},
	}
	for _, tt := range tests {
		if got := statementProblems(tt.stmt); (len(got) > 0) != tt.bad {
			t.Errorf("%s: problems %v, want bad=%v", tt.name, got, tt.bad)
		}
	}
	// And collectStatements finds statements in Fn::If branches.
	doc := map[string]any{"Resources": map[string]any{"R": map[string]any{"PolicyDocument": map[string]any{"Statement": []any{
		map[string]any{"Fn::If": []any{"C", ok(map[string]any{"Action": "s3:*"}), map[string]any{"Ref": "AWS::NoValue"}}},
	}}}}}
	if got := collectStatements(doc); len(got) != 1 || len(statementProblems(got[0].stmt)) == 0 {
		t.Errorf("collectStatements missed the bad statement inside Fn::If: %v", got)
	}
}

// grants renders a role under params and maps each action it allows to the
// sorted resources it is allowed on.
func grants(t *testing.T, tpl *template, role string, params map[string]string) map[string][]string {
	t.Helper()
	r := newRenderer(t, tpl, params)
	props, _ := r.resource(t, role)
	out := map[string][]string{}
	for _, p := range asSlice(props["Policies"]) {
		for _, s := range statements(dig(p, "PolicyDocument")) {
			if s["Effect"] != "Allow" {
				continue
			}
			actions, _ := literalStrings(s["Action"])
			var resources []string
			switch x := s["Resource"].(type) {
			case string:
				resources = []string{x}
			case []any:
				for _, e := range x {
					resources = append(resources, scalarString(e))
				}
			}
			for _, a := range actions {
				out[a] = append(out[a], resources...)
				sort.Strings(out[a])
			}
		}
	}
	return out
}

func TestCaptureRoleGrants(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	stream := attPlaceholder("Stream", "Arn")
	keyARN := "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	secretKeyARN := "arn:aws:kms:eu-west-1:123456789012:key/9999abcd-12ab-34cd-56ef-1234567890ab"
	base := func() map[string][]string {
		return map[string][]string{
			"kinesis:PutRecord":             {stream},
			"kinesis:PutRecords":            {stream},
			"kinesis:DescribeStreamSummary": {stream},
			"kinesis:DescribeStream":        {stream},
			"kinesis:ListShards":            {stream}, // v2 records' shard map
			"secretsmanager:GetSecretValue": {requiredParamValues["DbSecretArn"]},
			"lambda:GetLayerVersion":        {refPlaceholder("CaptureBinary")}, // the binary the stack packaged
			"cloudwatch:PutMetricData":      {"*"},
			// The claim check (on by default): put, never read or list.
			"s3:PutObject": {attPlaceholder("ClaimCheckBucket", "Arn") + "/walbridge/values/*"},
		}
	}
	noClaimCheck := base()
	delete(noClaimCheck, "s3:PutObject")
	withKeys := base()
	withKeys["kms:GenerateDataKey"] = []string{keyARN}
	withKeys["kms:Decrypt"] = []string{secretKeyARN}
	delete(withKeys, "lambda:GetLayerVersion")
	withKeys["s3:GetObject"] = []string{"arn:aws:s3:::walbridge-artifacts/walbridge/capture-linux-arm64", "arn:aws:s3:::walbridge-artifacts/walbridge/rds-ca.pem"}
	tests := []struct {
		name   string
		params map[string]string
		want   map[string][]string
	}{
		{"defaults", nil, base()},
		{"customer keys, binary and CA bundle in S3", map[string]string{
			"StreamKmsKeyId": keyARN, "DbSecretKmsKeyArn": secretKeyARN, "RdsCaBundleKey": "walbridge/rds-ca.pem",
			"ArtifactBucket": "walbridge-artifacts", "ArtifactKey": "walbridge/capture-linux-arm64",
		}, withKeys},
		{"no claim check", map[string]string{"ClaimCheck": "disabled"}, noClaimCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := grants(t, tpl, "CaptureRole", tt.params); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CaptureRole grants\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestFanoutRoleGrants(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	stream := attPlaceholder("Stream", "Arn")
	keyARN := "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	base := func(bus string) map[string][]string {
		return map[string][]string{
			"logs:CreateLogStream":          {attPlaceholder("FanoutLogGroup", "Arn")},
			"logs:PutLogEvents":             {attPlaceholder("FanoutLogGroup", "Arn")},
			"kinesis:DescribeStream":        {stream},
			"kinesis:DescribeStreamSummary": {stream},
			"kinesis:GetRecords":            {stream},
			"kinesis:GetShardIterator":      {stream},
			"kinesis:ListShards":            {stream},
			"events:PutEvents":              {bus},
			"sqs:SendMessage":               {attPlaceholder("FanoutDeadLetterQueue", "Arn")},
			// The claim check: events over the limit keep values there.
			"s3:PutObject": {attPlaceholder("ClaimCheckBucket", "Arn") + "/walbridge/values/*"},
			"s3:GetObject": {attPlaceholder("ClaimCheckBucket", "Arn") + "/walbridge/values/*"},
		}
	}
	noClaimCheck := base(attPlaceholder("EventBus", "Arn"))
	delete(noClaimCheck, "s3:PutObject")
	delete(noClaimCheck, "s3:GetObject")
	efo := base("arn:aws:events:eu-west-1:123456789012:event-bus/default")
	efo["kinesis:SubscribeToShard"] = []string{attPlaceholder("FanoutConsumer", "ConsumerARN")}
	efo["kinesis:DescribeStreamConsumer"] = []string{attPlaceholder("FanoutConsumer", "ConsumerARN")}
	efo["kms:Decrypt"] = []string{keyARN}
	tests := []struct {
		name   string
		params map[string]string
		want   map[string][]string
	}{
		{"defaults", nil, base(attPlaceholder("EventBus", "Arn"))},
		{"ordered bus", map[string]string{"BusKind": "ordered"}, base(refPlaceholder("OrderedEventBus"))},
		{"no claim check", map[string]string{"ClaimCheck": "disabled"}, noClaimCheck},
		{"default bus, enhanced fan-out, customer key", map[string]string{
			"EventBusName": "default", "UseEnhancedFanOut": "true", "StreamKmsKeyId": keyARN,
		}, efo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := grants(t, tpl, "FanoutRole", tt.params); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FanoutRole grants\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}
