package infra

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

const templatePath = "template.yaml"

func TestTemplateIsSAM(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	if got := tpl.Raw["AWSTemplateFormatVersion"]; got != "2010-09-09" {
		t.Errorf("AWSTemplateFormatVersion = %v", got)
	}
	if got := tpl.Raw["Transform"]; got != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %v, want AWS::Serverless-2016-10-31", got)
	}
	allowed := map[string]bool{
		"AWSTemplateFormatVersion": true, "Transform": true, "Description": true,
		"Metadata": true, "Parameters": true, "Rules": true, "Conditions": true,
		"Resources": true, "Outputs": true,
	}
	for k := range tpl.Raw {
		if !allowed[k] {
			t.Errorf("unexpected top-level section %q", k)
		}
	}
}

func TestParseTemplateShortForms(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       any
	}{
		{"Ref", "v: !Ref Foo", map[string]any{"Ref": "Foo"}},
		{"GetAtt scalar", "v: !GetAtt A.B", map[string]any{"Fn::GetAtt": []any{"A", "B"}}},
		{"GetAtt list", "v: !GetAtt [A, B]", map[string]any{"Fn::GetAtt": []any{"A", "B"}}},
		{"Sub", "v: !Sub 'x-${A}'", map[string]any{"Fn::Sub": "x-${A}"}},
		{"If nested", "v: !If [C, !Ref A, !Ref AWS::NoValue]", map[string]any{"Fn::If": []any{
			"C", map[string]any{"Ref": "A"}, map[string]any{"Ref": "AWS::NoValue"}}}},
		{"Equals", "v: !Not [!Equals [!Ref A, '']]", map[string]any{"Fn::Not": []any{
			map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "A"}, ""}}}}},
		{"Select Split", "v: !Select [2, !Split ['/', !Ref AWS::StackId]]", map[string]any{"Fn::Select": []any{
			2, map[string]any{"Fn::Split": []any{"/", map[string]any{"Ref": "AWS::StackId"}}}}}},
		{"plain", "v: {a: [1, 'x', true]}", map[string]any{"a": []any{1, "x", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := parseTemplate([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Raw["v"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"v: !Bogus x", "a: 1\na: 2", "v: !GetAtt NoDot"} {
		if _, err := parseTemplate([]byte(bad)); err == nil {
			t.Errorf("parseTemplate(%q) succeeded, want an error", bad)
		}
	}
}

// knownAttributes are the Fn::GetAtt attributes of the resource types the
// template uses; a type missing here fails the test until it is added.
var knownAttributes = map[string][]string{
	"AWS::AutoScaling::AutoScalingGroup": {},
	"AWS::CloudWatch::Alarm":             {"Arn"},
	"AWS::EC2::LaunchTemplate":           {"LaunchTemplateId", "LatestVersionNumber", "DefaultVersionNumber"},
	"AWS::EC2::SecurityGroup":            {"GroupId", "VpcId"},
	"AWS::EC2::SecurityGroupIngress":     {"Id"},
	"AWS::Events::Archive":               {"Arn"},
	"AWS::Events::EventBus":              {"Arn", "Name", "Policy"},
	"AWS::Events::Rule":                  {"Arn"},
	"AWS::IAM::InstanceProfile":          {"Arn"},
	"AWS::IAM::Role":                     {"Arn", "RoleId"},
	"AWS::Kinesis::Stream":               {"Arn"},
	"AWS::Kinesis::StreamConsumer":       {"ConsumerARN", "ConsumerName", "ConsumerStatus", "ConsumerCreationTimestamp", "StreamARN"},
	"AWS::Lambda::EventSourceMapping":    {"Id", "EventSourceMappingArn"},
	"AWS::Logs::LogGroup":                {"Arn"},
	"AWS::SNS::Subscription":             {"Arn"},
	"AWS::SNS::Topic":                    {"TopicArn", "TopicName"},
	"AWS::SQS::Queue":                    {"Arn", "QueueName", "QueueUrl"},
	"AWS::S3::Bucket":                    {"Arn", "DomainName", "DualStackDomainName", "RegionalDomainName", "WebsiteURL"},
	"AWS::SQS::QueuePolicy":              {"Id"},
	"AWS::Serverless::Function":          {"Arn"},
}

// refChecker checks every Ref, Fn::GetAtt, Fn::Sub variable, DependsOn and
// condition name, and that a resource with a Condition is only referenced
// where that condition is known to hold (inside the true branch of an Fn::If
// on it, or from something carrying the same Condition).
type refChecker struct {
	tpl        *template
	errs       []string
	usedParams map[string]bool
	usedConds  map[string]bool
}

func (c *refChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *refChecker) condition(where, name string) {
	c.usedConds[name] = true
	if _, ok := c.tpl.Conditions[name]; !ok {
		c.errorf("%s: condition %q is not defined", where, name)
	}
}

func (c *refChecker) target(where, name string, active map[string]bool, inConditions bool) {
	if pseudoParams[name] {
		return
	}
	if _, ok := c.tpl.Parameters[name]; ok {
		c.usedParams[name] = true
		return
	}
	res, ok := c.tpl.Resources[name]
	if !ok {
		c.errorf("%s: %q is neither a parameter, a resource nor a pseudo parameter", where, name)
		return
	}
	if inConditions {
		c.errorf("%s: conditions may not reference resource %q", where, name)
	}
	if cond, ok := res["Condition"].(string); ok && !active[cond] {
		c.errorf("%s: references %s, which only exists when %s, outside an Fn::If on it", where, name, cond)
	}
}

// with is active plus cond, and what cond implies: X for a condition
// defined as Fn::And of [Condition X, ...].
func (c *refChecker) with(active map[string]bool, cond string) map[string]bool {
	out := make(map[string]bool, len(active)+1)
	for k := range active {
		out[k] = true
	}
	var add func(string)
	add = func(name string) {
		if out[name] {
			return
		}
		out[name] = true
		if fn, arg, ok := intrinsic(c.tpl.Conditions[name]); ok && fn == "Fn::And" {
			for _, a := range asSlice(arg) {
				if fn, x, ok := intrinsic(a); ok && fn == "Condition" {
					add(scalarString(x))
				}
			}
		}
	}
	add(cond)
	return out
}

// without is active plus what holds where cond is false: a condition
// defined as Fn::Not [Condition cond], and X when cond is defined as
// Fn::Not [Condition X].
func (c *refChecker) without(active map[string]bool, cond string) map[string]bool {
	out := active
	negation := func(v any) (string, bool) {
		fn, arg, ok := intrinsic(v)
		if !ok || fn != "Fn::Not" || len(asSlice(arg)) != 1 {
			return "", false
		}
		fn, x, ok := intrinsic(asSlice(arg)[0])
		return scalarString(x), ok && fn == "Condition"
	}
	for name, def := range c.tpl.Conditions {
		if x, ok := negation(def); ok && x == cond {
			out = c.with(out, name)
		}
	}
	if x, ok := negation(c.tpl.Conditions[cond]); ok {
		out = c.with(out, x)
	}
	return out
}

func (c *refChecker) check(where string, v any, active map[string]bool, inConditions bool) {
	if fn, arg, ok := intrinsic(v); ok {
		switch fn {
		case "Ref":
			name, ok := arg.(string)
			if !ok {
				c.errorf("%s: Ref argument is not a string", where)
				return
			}
			c.target(where, name, active, inConditions)
			return
		case "Condition":
			c.condition(where, scalarString(arg))
			return
		case "Fn::GetAtt":
			parts, ok := arg.([]any)
			if !ok || len(parts) != 2 {
				c.errorf("%s: malformed Fn::GetAtt", where)
				return
			}
			res, attr := scalarString(parts[0]), scalarString(parts[1])
			c.target(where, res, active, inConditions)
			if r, ok := c.tpl.Resources[res]; ok {
				typ := r["Type"].(string)
				attrs, known := knownAttributes[typ]
				if !known {
					c.errorf("%s: add the attributes of %s to knownAttributes", where, typ)
				} else if !slices.Contains(attrs, attr) {
					c.errorf("%s: %s (%s) has no attribute %q", where, res, typ, attr)
				}
			}
			return
		case "Fn::If":
			parts, ok := arg.([]any)
			if !ok || len(parts) != 3 {
				c.errorf("%s: malformed Fn::If", where)
				return
			}
			cond := scalarString(parts[0])
			c.condition(where, cond)
			c.check(where, parts[1], c.with(active, cond), inConditions)
			c.check(where, parts[2], c.without(active, cond), inConditions)
			return
		case "Fn::Sub":
			var s string
			local := map[string]bool{}
			switch a := arg.(type) {
			case string:
				s = a
			case []any:
				if len(a) != 2 {
					c.errorf("%s: malformed Fn::Sub", where)
					return
				}
				s, _ = a[0].(string)
				for k, v := range asMap(a[1]) {
					local[k] = true
					c.check(where+".Fn::Sub."+k, v, active, inConditions)
				}
			}
			for _, name := range subVars(s) {
				if local[name] {
					continue
				}
				if res, attr, ok := strings.Cut(name, "."); ok {
					c.check(where, map[string]any{"Fn::GetAtt": []any{res, attr}}, active, inConditions)
				} else {
					c.target(where, name, active, inConditions)
				}
			}
			return
		}
		// Other functions: check their arguments.
		c.check(where, arg, active, inConditions)
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			c.check(where+"."+k, val, active, inConditions)
		}
	case []any:
		for i, val := range x {
			c.check(fmt.Sprintf("%s[%d]", where, i), val, active, inConditions)
		}
	}
}

func TestReferencesResolve(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	c := &refChecker{tpl: tpl, usedParams: map[string]bool{}, usedConds: map[string]bool{}}
	for name, cond := range tpl.Conditions {
		c.check("Conditions."+name, cond, nil, true)
	}
	for name, res := range tpl.Resources {
		active := map[string]bool{}
		if cond, ok := res["Condition"]; ok {
			c.condition("Resources."+name, scalarString(cond))
			active = c.with(active, scalarString(cond))
		}
		c.check("Resources."+name+".Properties", res["Properties"], active, false)
		var deps []any
		switch d := res["DependsOn"].(type) {
		case string:
			deps = []any{d}
		case []any:
			deps = d
		}
		for _, d := range deps {
			if _, ok := tpl.Resources[scalarString(d)]; !ok {
				t.Errorf("Resources.%s: DependsOn unknown resource %v", name, d)
			}
		}
	}
	for name, out := range tpl.Outputs {
		o := asMap(out)
		active := map[string]bool{}
		if cond, ok := o["Condition"]; ok {
			c.condition("Outputs."+name, scalarString(cond))
			active = c.with(active, scalarString(cond))
		}
		c.check("Outputs."+name+".Value", o["Value"], active, false)
	}
	for name := range tpl.Parameters {
		if !c.usedParams[name] {
			c.errorf("parameter %s is never used", name)
		}
	}
	for name := range tpl.Conditions {
		if !c.usedConds[name] {
			c.errorf("condition %s is never used", name)
		}
	}
	sort.Strings(c.errs)
	for _, e := range c.errs {
		t.Error(e)
	}
	// The checker must be able to fail.
	bad := &refChecker{tpl: tpl, usedParams: map[string]bool{}, usedConds: map[string]bool{}}
	bad.check("x", map[string]any{"Ref": "NoSuchThing"}, nil, false)
	bad.check("x", map[string]any{"Fn::GetAtt": []any{"Stream", "NoSuchAttr"}}, nil, false)
	bad.check("x", map[string]any{"Fn::GetAtt": []any{"EventBus", "Arn"}}, nil, false) // conditional
	bad.check("x", map[string]any{"Fn::Sub": "${NoSuchParam}"}, nil, false)
	bad.check("x", map[string]any{"Fn::If": []any{"NoSuchCondition", "a", "b"}}, nil, false)
	// The false branch of an If on IsClassicBus is the ordered bus.
	bad.check("x", map[string]any{"Fn::If": []any{"IsClassicBus", "a", map[string]any{"Ref": "WelcomeEmailQueue"}}}, nil, false)
	if len(bad.errs) != 6 {
		t.Errorf("refChecker found %d problems in 6 bad references: %v", len(bad.errs), bad.errs)
	}
}

func TestDefaultParametersAreValid(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for name, p := range tpl.Parameters {
		if _, ok := p["Type"].(string); !ok {
			t.Errorf("parameter %s has no Type", name)
		}
		if d, ok := p["Default"]; ok {
			if err := checkParamValue(p, scalarString(d)); err != nil {
				t.Errorf("parameter %s: default %v: %v", name, d, err)
			}
		}
	}
	newRenderer(t, tpl, nil) // and the test values of the required ones
}

func TestStream(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	raw := asMap(tpl.Resources["Stream"]["Properties"])
	if p := paramOf(raw["RetentionPeriodHours"]); p == "" {
		t.Errorf("RetentionPeriodHours is not a parameter: %v", raw["RetentionPeriodHours"])
	} else if d := scalarString(tpl.Parameters[p]["Default"]); d != "168" {
		t.Errorf("RetentionPeriodHours parameter %s defaults to %q, want 168", p, d)
	}
	keyARN := "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	tests := []struct {
		name      string
		params    map[string]string
		mode      string
		shards    any // nil: no ShardCount
		strategy  any // nil: no RecordDistributionStrategy
		key       string
		retention string
	}{
		{"defaults", nil, "ON_DEMAND", nil, "USER_PARTITION_KEY", "alias/aws/kinesis", "168"},
		{"provisioned", map[string]string{"StreamMode": "PROVISIONED", "ShardCount": "4"}, "PROVISIONED", "4", nil, "alias/aws/kinesis", "168"},
		{"customer key, longer retention", map[string]string{"StreamKmsKeyId": keyARN, "StreamRetentionHours": "720"}, "ON_DEMAND", nil, "USER_PARTITION_KEY", keyARN, "720"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRenderer(t, tpl, tt.params)
			s, _ := r.resource(t, "Stream")
			if got := dig(s, "StreamModeDetails", "StreamMode"); got != tt.mode {
				t.Errorf("StreamMode = %v, want %v", got, tt.mode)
			}
			if got := s["ShardCount"]; got != tt.shards {
				t.Errorf("ShardCount = %v, want %v", got, tt.shards)
			}
			if got := s["RecordDistributionStrategy"]; got != tt.strategy {
				t.Errorf("RecordDistributionStrategy = %v, want %v", got, tt.strategy)
			}
			if got := dig(s, "StreamEncryption", "EncryptionType"); got != "KMS" {
				t.Errorf("EncryptionType = %v, want KMS", got)
			}
			if got := dig(s, "StreamEncryption", "KeyId"); got != tt.key {
				t.Errorf("KeyId = %v, want %v", got, tt.key)
			}
			if got := scalarString(s["RetentionPeriodHours"]); got != tt.retention {
				t.Errorf("RetentionPeriodHours = %v, want %v", got, tt.retention)
			}
		})
	}
}

// paramOf returns the parameter v is a plain Ref to, or "".
func paramOf(v any) string {
	fn, arg, ok := intrinsic(v)
	if !ok || fn != "Ref" {
		return ""
	}
	name, _ := arg.(string)
	return name
}

func TestFanoutFunction(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	fns := resourcesOfType(tpl, "AWS::Serverless::Function")
	if !reflect.DeepEqual(fns, []string{"FanoutFunction"}) {
		t.Fatalf("serverless functions = %v, want [FanoutFunction]", fns)
	}
	raw := asMap(tpl.Resources["FanoutFunction"]["Properties"])
	// All permissions live in explicit roles that TestIAMPolicies reads;
	// SAM's Policies (and policy templates) would hide them.
	for _, k := range []string{"Policies", "Events", "PermissionsBoundary"} {
		if _, ok := raw[k]; ok {
			t.Errorf("FanoutFunction sets %s; use FanoutRole and FanoutEventSourceMapping", k)
		}
	}
	r := newRenderer(t, tpl, nil)
	fn, _ := r.resource(t, "FanoutFunction")
	want := map[string]any{
		"Runtime":       "provided.al2023",
		"Architectures": []any{"arm64"},
		"Handler":       "bootstrap",
		"CodeUri":       "./",
		"Role":          attPlaceholder("FanoutRole", "Arn"),
	}
	for k, v := range want {
		if !reflect.DeepEqual(fn[k], v) {
			t.Errorf("%s = %#v, want %#v", k, fn[k], v)
		}
	}
	// sam build runs infra/Makefile's target for it (TestBuildTargets).
	if m := asMap(tpl.Resources["FanoutFunction"]["Metadata"]); m["BuildMethod"] != "makefile" || m["BuildArchitecture"] != "arm64" {
		t.Errorf("FanoutFunction Metadata = %v, want BuildMethod makefile for arm64", m)
	}
	env := asMap(dig(fn, "Environment", "Variables"))
	wantEnv := map[string]any{
		"WALBRIDGE_EVENT_BUS":   refPlaceholder("EventBus"),
		"WALBRIDGE_BUS_KIND":    "classic",
		"WALBRIDGE_SOURCE":      "walbridge.database",
		"WALBRIDGE_DETAIL_TYPE": "DatabaseEvent",
		"WALBRIDGE_RESOURCE":    requiredParamValues["ResourceName"],
		// fanout's own default; v2 records raise it (TestRecordFormatV2SizesTheFunction).
		"WALBRIDGE_PUBLISH_CONCURRENCY": "4",
		"WALBRIDGE_CLAIM_CHECK_BUCKET":  refPlaceholder("ClaimCheckBucket"),
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("Environment.Variables = %v, want %v", env, wantEnv)
	}
}

func resourcesOfType(tpl *template, typ string) []string {
	var out []string
	for name, r := range tpl.Resources {
		if r["Type"] == typ {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func TestEventSourceMapping(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	esms := resourcesOfType(tpl, "AWS::Lambda::EventSourceMapping")
	if !reflect.DeepEqual(esms, []string{"FanoutEventSourceMapping"}) {
		t.Fatalf("event source mappings = %v", esms)
	}
	raw := asMap(tpl.Resources["FanoutEventSourceMapping"]["Properties"])

	// Bounded retries and record age: a parameter whose own constraints
	// reject -1 (retry forever, which would stall the shard behind one bad
	// record) and anything past the API's maximum.
	bounds := []struct {
		prop     string
		min, max float64
		def      string
	}{
		{"MaximumRetryAttempts", 0, 10000, "10"},
		{"MaximumRecordAgeInSeconds", 60, 604800, "3600"},
		{"ParallelizationFactor", 1, 10, "1"},
		{"BatchSize", 1, 10000, "100"},
	}
	for _, b := range bounds {
		p := paramOf(raw[b.prop])
		if p == "" {
			t.Errorf("%s is not a parameter: %v", b.prop, raw[b.prop])
			continue
		}
		param := tpl.Parameters[p]
		if got := scalarString(param["Default"]); got != b.def {
			t.Errorf("%s (parameter %s) defaults to %q, want %s", b.prop, p, got, b.def)
		}
		if err := checkParamValue(param, "-1"); err == nil {
			t.Errorf("%s (parameter %s) accepts -1", b.prop, p)
		}
		if _, ok := param["MinValue"]; !ok || toFloat(param["MinValue"]) < b.min {
			t.Errorf("%s (parameter %s) MinValue = %v, want >= %v", b.prop, p, param["MinValue"], b.min)
		}
		if _, ok := param["MaxValue"]; !ok || toFloat(param["MaxValue"]) > b.max {
			t.Errorf("%s (parameter %s) MaxValue = %v, want <= %v", b.prop, p, param["MaxValue"], b.max)
		}
	}

	for _, efo := range []string{"false", "true"} {
		t.Run("UseEnhancedFanOut="+efo, func(t *testing.T) {
			r := newRenderer(t, tpl, map[string]string{"UseEnhancedFanOut": efo})
			m, _ := r.resource(t, "FanoutEventSourceMapping")
			wantSource := attPlaceholder("Stream", "Arn")
			if efo == "true" {
				wantSource = attPlaceholder("FanoutConsumer", "ConsumerARN")
			}
			checks := map[string]any{
				"FunctionName":               refPlaceholder("FanoutFunction"),
				"EventSourceArn":             wantSource,
				"StartingPosition":           "TRIM_HORIZON",
				"FunctionResponseTypes":      []any{"ReportBatchItemFailures"},
				"BisectBatchOnFunctionError": true,
				"MaximumRetryAttempts":       "10",
				"MaximumRecordAgeInSeconds":  "3600",
				"ParallelizationFactor":      "1",
				"Enabled":                    true,
			}
			for k, v := range checks {
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			dest := dig(m, "DestinationConfig", "OnFailure", "Destination")
			if dest != attPlaceholder("FanoutDeadLetterQueue", "Arn") {
				t.Errorf("DestinationConfig.OnFailure.Destination = %v, want the dead-letter queue", dest)
			}
			if tpl.Resources["FanoutDeadLetterQueue"]["Type"] != "AWS::SQS::Queue" {
				t.Errorf("FanoutDeadLetterQueue is not an SQS queue")
			}
			_, consumer := r.resource(t, "FanoutConsumer")
			if consumer != (efo == "true") {
				t.Errorf("FanoutConsumer exists = %v with UseEnhancedFanOut=%s", consumer, efo)
			}
		})
	}
}

func TestEventBridge(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	if d := scalarString(tpl.Parameters["EventBusName"]["Default"]); d == "" || d == "default" {
		t.Errorf("EventBusName defaults to %q; a custom bus should be the default", d)
	}
	defaultBusARN := "arn:aws:events:eu-west-1:123456789012:event-bus/default"
	tests := []struct {
		bus             string
		wantBus         bool
		busName, busARN string
	}{
		{"walbridge", true, refPlaceholder("EventBus"), attPlaceholder("EventBus", "Arn")},
		{"default", false, "default", defaultBusARN},
	}
	ordered := newRenderer(t, tpl, map[string]string{"BusKind": "ordered"})
	fn, _ := ordered.resource(t, "FanoutFunction")
	if got := asMap(dig(fn, "Environment", "Variables")); got["WALBRIDGE_EVENT_BUS"] != refPlaceholder("OrderedEventBus") || got["WALBRIDGE_BUS_KIND"] != "ordered" {
		t.Errorf("ordered bus: fanout's environment %v, want the bus ARN (Ref) and WALBRIDGE_BUS_KIND=ordered", got)
	}
	out := asMap(ordered.mustRender(t, tpl.Outputs))
	if got := dig(out, "EventBusArn", "Value"); got != refPlaceholder("OrderedEventBus") {
		t.Errorf("ordered bus: output EventBusArn = %v", got)
	}
	if c := dig(asMap(tpl.Outputs), "EventArchiveName", "Condition"); c != "IsClassicBus" {
		t.Errorf("output EventArchiveName has Condition %v, want IsClassicBus (the ordered bus has no archive)", c)
	}
	for _, tt := range tests {
		t.Run("EventBusName="+tt.bus, func(t *testing.T) {
			r := newRenderer(t, tpl, map[string]string{"EventBusName": tt.bus})
			bus, exists := r.resource(t, "EventBus")
			if exists != tt.wantBus {
				t.Fatalf("EventBus exists = %v", exists)
			}
			if exists && bus["Name"] != tt.bus {
				t.Errorf("EventBus Name = %v", bus["Name"])
			}
			archive, _ := r.resource(t, "EventArchive")
			if archive["SourceArn"] != tt.busARN {
				t.Errorf("archive SourceArn = %v, want %v", archive["SourceArn"], tt.busARN)
			}
			if want := map[string]any{"source": []any{"walbridge.database"}}; !reflect.DeepEqual(archive["EventPattern"], want) {
				t.Errorf("archive EventPattern = %v, want %v", archive["EventPattern"], want)
			}
			fn, _ := r.resource(t, "FanoutFunction")
			if got := dig(fn, "Environment", "Variables", "WALBRIDGE_EVENT_BUS"); got != tt.busName {
				t.Errorf("WALBRIDGE_EVENT_BUS = %v, want %v", got, tt.busName)
			}
			rule, _ := r.resource(t, "WelcomeEmailRule")
			if rule["EventBusName"] != tt.busName {
				t.Errorf("rule EventBusName = %v, want %v", rule["EventBusName"], tt.busName)
			}
			out := asMap(r.mustRender(t, tpl.Outputs))
			if got := dig(out, "EventBusArn", "Value"); got != tt.busARN {
				t.Errorf("output EventBusArn = %v, want %v", got, tt.busARN)
			}
		})
	}

	r := newRenderer(t, tpl, nil)
	rule, _ := r.resource(t, "WelcomeEmailRule")
	wantPattern := map[string]any{
		"source":      []any{"walbridge.database"},
		"detail-type": []any{"DatabaseEvent"},
		"resources":   []any{requiredParamValues["ResourceName"]},
		"detail": map[string]any{
			"schema":    []any{"public"},
			"table":     []any{"users"},
			"operation": []any{"insert"},
		},
	}
	if !reflect.DeepEqual(rule["EventPattern"], wantPattern) {
		t.Errorf("rule EventPattern = %#v, want %#v", rule["EventPattern"], wantPattern)
	}
	if rule["State"] != "ENABLED" {
		t.Errorf("rule State = %v", rule["State"])
	}
	name := scalarString(rule["Name"])
	if len(name) == 0 || len(name) > 64 {
		t.Errorf("rule Name %q must be 1 to 64 characters whatever the stack name", name)
	}
	targets, _ := rule["Targets"].([]any)
	if len(targets) != 1 {
		t.Fatalf("rule has %d targets, want 1", len(targets))
	}
	target := asMap(targets[0])
	if target["Arn"] != attPlaceholder("WelcomeEmailQueue", "Arn") {
		t.Errorf("target Arn = %v", target["Arn"])
	}
	if dig(target, "DeadLetterConfig", "Arn") != attPlaceholder("WelcomeEmailDeadLetterQueue", "Arn") {
		t.Errorf("target DeadLetterConfig = %v", target["DeadLetterConfig"])
	}
	if rp := asMap(target["RetryPolicy"]); rp["MaximumRetryAttempts"] == nil || rp["MaximumEventAgeInSeconds"] == nil {
		t.Errorf("target RetryPolicy = %v, want both limits", target["RetryPolicy"])
	}
	// Both queues must let this rule (and only it) send.
	for policy, queue := range map[string]string{
		"WelcomeEmailQueuePolicy":           "WelcomeEmailQueue",
		"WelcomeEmailDeadLetterQueuePolicy": "WelcomeEmailDeadLetterQueue",
	} {
		p, _ := r.resource(t, policy)
		if !reflect.DeepEqual(p["Queues"], []any{refPlaceholder(queue)}) {
			t.Errorf("%s Queues = %v", policy, p["Queues"])
		}
		found := false
		for _, s := range statements(dig(p, "PolicyDocument")) {
			if s["Effect"] == "Allow" && reflect.DeepEqual(s["Principal"], map[string]any{"Service": "events.amazonaws.com"}) &&
				s["Action"] == "sqs:SendMessage" && s["Resource"] == attPlaceholder(queue, "Arn") &&
				dig(s, "Condition", "ArnEquals", "aws:SourceArn") == attPlaceholder("WelcomeEmailRule", "Arn") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not allow sqs:SendMessage from events.amazonaws.com for WelcomeEmailRule", policy)
		}
	}
}

// statements returns a rendered policy document's statements.
func statements(doc any) []map[string]any {
	var out []map[string]any
	switch s := dig(doc, "Statement").(type) {
	case map[string]any:
		out = append(out, s)
	case []any:
		for _, x := range s {
			out = append(out, asMap(x))
		}
	}
	return out
}

func TestAlarms(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	ruleNameOf := func(r *renderer) string {
		rule, _ := r.resource(t, "WelcomeEmailRule")
		return scalarString(rule["Name"])
	}
	type want struct {
		namespace, metric string
		dims              func(r *renderer) []any
		missing           string // required TreatMissingData, or "" for any
	}
	dim := func(name string, value any) any { return map[string]any{"Name": name, "Value": value} }
	slot := func(*renderer) []any { return []any{dim("Slot", "walbridge")} }
	fanout := func(*renderer) []any { return []any{dim("FunctionName", refPlaceholder("FanoutFunction"))} }
	required := []want{
		{"walbridge", "ReplicationSlotWALRetainedBytes", slot, ""},
		{"walbridge", "ConfirmedLSNAdvancedSeconds", slot, "breaching"},
		{"walbridge", "CommitToAckLatencyMs", slot, ""},
		{"walbridge", "SetupRefused", slot, "notBreaching"},
		{"AWS/Lambda", "IteratorAge", fanout, ""},
		{"AWS/Lambda", "Errors", fanout, ""},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", func(*renderer) []any {
			return []any{dim("QueueName", attPlaceholder("FanoutDeadLetterQueue", "QueueName"))}
		}, ""},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", func(*renderer) []any {
			return []any{dim("QueueName", attPlaceholder("WelcomeEmailDeadLetterQueue", "QueueName"))}
		}, ""},
		{"AWS/Events", "FailedInvocations", func(r *renderer) []any {
			if r.params["EventBusName"] == "default" {
				return []any{dim("RuleName", ruleNameOf(r))}
			}
			return []any{dim("EventBusName", refPlaceholder("EventBus")), dim("RuleName", ruleNameOf(r))}
		}, "notBreaching"},
	}
	for _, params := range []map[string]string{
		nil,
		{"EventBusName": "default"},
		{"DbInstanceIdentifier": "orders-writer"},
	} {
		t.Run(fmt.Sprint(params), func(t *testing.T) {
			r := newRenderer(t, tpl, params)
			var alarms []map[string]any
			for _, name := range resourcesOfType(tpl, "AWS::CloudWatch::Alarm") {
				if a, ok := r.resource(t, name); ok {
					alarms = append(alarms, a)
				}
			}
			for _, a := range alarms {
				for _, k := range []string{"AlarmActions", "OKActions"} {
					if !reflect.DeepEqual(a[k], []any{refPlaceholder("AlarmTopic")}) {
						t.Errorf("alarm %v: %s = %v, want the alarm topic", a["AlarmName"], k, a[k])
					}
				}
				for _, k := range []string{"Threshold", "ComparisonOperator", "Period", "EvaluationPeriods", "TreatMissingData"} {
					if a[k] == nil {
						t.Errorf("alarm %v has no %s", a["AlarmName"], k)
					}
				}
			}
			checkAlarms := required
			if id := params["DbInstanceIdentifier"]; id != "" {
				checkAlarms = append(slices.Clone(required), want{"AWS/RDS", "OldestReplicationSlotLag", func(*renderer) []any {
					return []any{dim("DBInstanceIdentifier", id)}
				}, ""})
			}
			for _, w := range checkAlarms {
				found := false
				for _, a := range alarms {
					if a["Namespace"] == w.namespace && a["MetricName"] == w.metric && reflect.DeepEqual(a["Dimensions"], w.dims(r)) {
						found = true
						if w.missing != "" && a["TreatMissingData"] != w.missing {
							t.Errorf("alarm on %s/%s: TreatMissingData = %v, want %s", w.namespace, w.metric, a["TreatMissingData"], w.missing)
						}
					}
				}
				if !found {
					t.Errorf("no alarm on %s %s with dimensions %v", w.namespace, w.metric, w.dims(r))
				}
			}
		})
	}
	r := newRenderer(t, tpl, map[string]string{"AlarmEmail": "oncall@example.com"})
	sub, ok := r.resource(t, "AlarmEmailSubscription")
	if !ok || sub["Endpoint"] != "oncall@example.com" || sub["TopicArn"] != refPlaceholder("AlarmTopic") {
		t.Errorf("AlarmEmailSubscription = %v (exists %v)", sub, ok)
	}
	if _, ok := newRenderer(t, tpl, nil).resource(t, "AlarmEmailSubscription"); ok {
		t.Errorf("AlarmEmailSubscription exists without AlarmEmail")
	}
}

func TestOutputs(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	r := newRenderer(t, tpl, nil)
	out := asMap(r.mustRender(t, tpl.Outputs))
	want := map[string]any{
		"StreamName":                  refPlaceholder("Stream"),
		"StreamArn":                   attPlaceholder("Stream", "Arn"),
		"EventBusName":                refPlaceholder("EventBus"),
		"EventBusArn":                 attPlaceholder("EventBus", "Arn"),
		"FanoutFunctionName":          refPlaceholder("FanoutFunction"),
		"FanoutEventSourceMappingId":  refPlaceholder("FanoutEventSourceMapping"), // Ref is the UUID
		"FanoutDeadLetterQueueUrl":    refPlaceholder("FanoutDeadLetterQueue"),    // Ref is the URL
		"EventArchiveName":            refPlaceholder("EventArchive"),
		"CaptureAutoScalingGroupName": refPlaceholder("CaptureGroup"),
	}
	for k, v := range want {
		if got := dig(out, k, "Value"); got != v {
			t.Errorf("output %s = %v, want %v", k, got, v)
		}
	}
}

func TestCaptureInstance(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	r := newRenderer(t, tpl, nil)

	lt, _ := r.resource(t, "CaptureLaunchTemplate")
	data := asMap(lt["LaunchTemplateData"])
	if got := dig(data, "MetadataOptions", "HttpTokens"); got != "required" {
		t.Errorf("MetadataOptions.HttpTokens = %v, want required (IMDSv2 only)", got)
	}
	if got := dig(data, "MetadataOptions", "HttpEndpoint"); got != "enabled" {
		t.Errorf("MetadataOptions.HttpEndpoint = %v, want enabled (the instance role needs it)", got)
	}
	for _, bd := range asSlice(data["BlockDeviceMappings"]) {
		if dig(bd, "Ebs", "Encrypted") != true {
			t.Errorf("block device %v is not encrypted", dig(bd, "DeviceName"))
		}
	}
	if got := dig(data, "IamInstanceProfile", "Arn"); got != attPlaceholder("CaptureInstanceProfile", "Arn") {
		t.Errorf("IamInstanceProfile = %v", got)
	}

	// No SSH: no key pair anywhere, no ingress to port 22.
	walk(tpl.Raw, nil, func(path []string, v any) {
		if len(path) > 0 && path[len(path)-1] == "KeyName" {
			t.Errorf("%s: no key pairs (use Session Manager)", strings.Join(path, "."))
		}
	})
	for _, p := range ingressProblems(t, r) {
		t.Error(p)
	}

	role, _ := r.resource(t, "CaptureRole")
	if !slices.Contains(asSlice(role["ManagedPolicyArns"]), any("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")) {
		t.Errorf("CaptureRole lacks AmazonSSMManagedInstanceCore: %v", role["ManagedPolicyArns"])
	}

	asg, _ := r.resource(t, "CaptureGroup")
	if scalarString(asg["MinSize"]) != "1" {
		t.Errorf("MinSize = %v, want 1", asg["MinSize"])
	}
	raw := asMap(tpl.Resources["CaptureGroup"]["Properties"])
	for _, k := range []string{"MaxSize", "DesiredCapacity"} {
		p := paramOf(raw[k])
		if p == "" {
			t.Errorf("%s is not a parameter", k)
			continue
		}
		var allowed []string
		for _, v := range asSlice(tpl.Parameters[p]["AllowedValues"]) {
			allowed = append(allowed, scalarString(v))
		}
		if !reflect.DeepEqual(allowed, []string{"1", "2"}) || scalarString(tpl.Parameters[p]["Default"]) != "1" {
			t.Errorf("%s: parameter %s allows %v (default %v), want 1 or 2, default 1", k, p, allowed, tpl.Parameters[p]["Default"])
		}
	}
	if asg["HealthCheckType"] != "EC2" {
		t.Errorf("HealthCheckType = %v, want EC2", asg["HealthCheckType"])
	}
	if got := dig(asg, "LaunchTemplate", "Version"); got != attPlaceholder("CaptureLaunchTemplate", "LatestVersionNumber") {
		t.Errorf("LaunchTemplate.Version = %v, want the latest version", got)
	}
	if got := asg["VPCZoneIdentifier"]; len(asSlice(got)) != 2 {
		t.Errorf("VPCZoneIdentifier = %v, want the SubnetIds list", got)
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// ingressProblems lists security group ingress that opens SSH, all ports or
// the internet, in every AWS::EC2::SecurityGroup and SecurityGroupIngress.
func ingressProblems(t *testing.T, r *renderer) []string {
	var rules []map[string]any
	for _, name := range resourcesOfType(r.tpl, "AWS::EC2::SecurityGroup") {
		sg, _ := r.resource(t, name)
		for _, in := range asSlice(sg["SecurityGroupIngress"]) {
			rules = append(rules, asMap(in))
		}
	}
	for _, name := range resourcesOfType(r.tpl, "AWS::EC2::SecurityGroupIngress") {
		in, _ := r.resource(t, name)
		rules = append(rules, in)
	}
	var problems []string
	for _, in := range rules {
		problems = append(problems, ingressRuleProblems(in)...)
	}
	return problems
}

func ingressRuleProblems(in map[string]any) []string {
	var problems []string
	proto := scalarString(in["IpProtocol"])
	if proto == "-1" || proto == "all" {
		problems = append(problems, fmt.Sprintf("ingress %v opens every protocol and port", in))
	}
	from, to := toFloat(in["FromPort"]), toFloat(in["ToPort"])
	if (proto == "tcp" || proto == "6") && from <= 22 && 22 <= to {
		problems = append(problems, fmt.Sprintf("ingress %v opens port 22", in))
	}
	if in["CidrIp"] == "0.0.0.0/0" || in["CidrIpv6"] == "::/0" {
		problems = append(problems, fmt.Sprintf("ingress %v is open to the internet", in))
	}
	return problems
}

func TestIngressRuleProblems(t *testing.T) {
	tests := []struct {
		rule map[string]any
		bad  bool
	}{
		{map[string]any{"IpProtocol": "tcp", "FromPort": "5432", "ToPort": "5432", "SourceSecurityGroupId": "sg-1"}, false},
		{map[string]any{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "SourceSecurityGroupId": "sg-1"}, true},
		{map[string]any{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "SourceSecurityGroupId": "sg-1"}, true},
		{map[string]any{"IpProtocol": "-1", "SourceSecurityGroupId": "sg-1"}, true},
		{map[string]any{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}, true},
	}
	for _, tt := range tests {
		if got := len(ingressRuleProblems(tt.rule)) > 0; got != tt.bad {
			t.Errorf("ingressRuleProblems(%v) flagged = %v, want %v", tt.rule, got, tt.bad)
		}
	}
}

func TestReadmeDocumentsTemplate(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	readme := readFile(t, "README.md")
	for name := range tpl.Parameters {
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README.md does not document parameter %s", name)
		}
	}
	// The deploy is the AWS user's own two commands.
	if !strings.Contains(readme, "sam build && sam deploy --guided") {
		t.Error("README.md does not give the deploy as sam build && sam deploy --guided")
	}
	for k := range starResourceActions {
		if !strings.Contains(readme, "`"+k+"`") {
			t.Errorf("README.md does not explain why %s needs Resource \"*\"", k)
		}
	}
}
