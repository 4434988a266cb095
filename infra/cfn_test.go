package infra

// A small offline reader for CloudFormation YAML: short-form intrinsic tags
// become their long form, and render evaluates Ref, Fn::If, Fn::Sub and the
// like against parameter values, so that tests can assert on the template as
// CloudFormation would receive it under given parameters.

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// template is a parsed CloudFormation template.
type template struct {
	Raw        map[string]any
	Parameters map[string]map[string]any
	Conditions map[string]any
	Resources  map[string]map[string]any
	Outputs    map[string]any
}

func loadTemplate(t testing.TB, path string) *template {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := parseTemplate(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tpl
}

func parseTemplate(data []byte) (*template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("expected one YAML document")
	}
	v, err := fromNode(doc.Content[0])
	if err != nil {
		return nil, err
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is not a mapping")
	}
	tpl := &template{
		Raw:        raw,
		Parameters: map[string]map[string]any{},
		Conditions: asMap(raw["Conditions"]),
		Resources:  map[string]map[string]any{},
		Outputs:    asMap(raw["Outputs"]),
	}
	for name, p := range asMap(raw["Parameters"]) {
		pm, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parameter %s is not a mapping", name)
		}
		tpl.Parameters[name] = pm
	}
	for name, r := range asMap(raw["Resources"]) {
		rm, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s is not a mapping", name)
		}
		if _, ok := rm["Type"].(string); !ok {
			return nil, fmt.Errorf("resource %s has no Type", name)
		}
		tpl.Resources[name] = rm
	}
	return tpl, nil
}

// intrinsicTags maps CloudFormation's YAML short forms to their long forms.
var intrinsicTags = map[string]string{
	"!Ref":         "Ref",
	"!Condition":   "Condition",
	"!Base64":      "Fn::Base64",
	"!Cidr":        "Fn::Cidr",
	"!FindInMap":   "Fn::FindInMap",
	"!GetAtt":      "Fn::GetAtt",
	"!GetAZs":      "Fn::GetAZs",
	"!ImportValue": "Fn::ImportValue",
	"!Join":        "Fn::Join",
	"!Select":      "Fn::Select",
	"!Split":       "Fn::Split",
	"!Sub":         "Fn::Sub",
	"!Transform":   "Fn::Transform",
	"!And":         "Fn::And",
	"!Equals":      "Fn::Equals",
	"!If":          "Fn::If",
	"!Not":         "Fn::Not",
	"!Or":          "Fn::Or",
}

// fromNode converts a YAML node to plain Go values (map[string]any, []any,
// string, int, bool, float64, nil), turning short-form tags into long-form
// single-key maps and rejecting duplicate keys and unknown tags.
func fromNode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return fromNode(n.Alias)
	}
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: non-scalar key", k.Line)
			}
			if k.Value == "<<" {
				return nil, fmt.Errorf("line %d: merge keys are not CloudFormation", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			cv, err := fromNode(val)
			if err != nil {
				return nil, err
			}
			m[k.Value] = cv
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			cv, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, cv)
		}
		v = s
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			v = n.Value // a tagged scalar is a string argument
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %v", n.Line, err)
		}
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	long, ok := intrinsicTags[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	if long == "Fn::GetAtt" {
		if s, ok := v.(string); ok {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("line %d: !GetAtt %q has no attribute", n.Line, s)
			}
			v = []any{res, attr}
		}
	}
	return map[string]any{long: v}, nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

// intrinsic reports whether v is a single-key map whose key is an intrinsic
// function or Ref, and returns the key and argument.
func intrinsic(v any) (string, any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, false
	}
	for k, arg := range m {
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, arg, true
		}
	}
	return "", nil, false
}

// dig follows keys (for maps) and indexes (for slices).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

// pseudo holds the values render gives pseudo parameters.
var pseudo = map[string]string{
	"AWS::AccountId": "123456789012",
	"AWS::Partition": "aws",
	"AWS::Region":    "eu-west-1",
	"AWS::StackId":   "arn:aws:cloudformation:eu-west-1:123456789012:stack/walbridge-test/6f1c2a80-0d0e-11f0-9cd2-0242ac120002",
	"AWS::StackName": "walbridge-test",
	"AWS::URLSuffix": "amazonaws.com",
}

// pseudoParams are every pseudo parameter CloudFormation defines.
var pseudoParams = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true,
	"AWS::Partition": true, "AWS::Region": true, "AWS::StackId": true,
	"AWS::StackName": true, "AWS::URLSuffix": true,
}

// requiredParamValues are used for parameters without a default.
var requiredParamValues = map[string]string{
	"DbHost":            "orders.cluster-abc123.eu-west-1.rds.amazonaws.com",
	"DbName":            "orders",
	"DbSecretArn":       "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders/walbridge-AbCdEf",
	"DbSecurityGroupId": "sg-0123456789abcdef0",
	"VpcId":             "vpc-0123456789abcdef0",
	"SubnetIds":         "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
	"ArtifactBucket":    "walbridge-artifacts",
	"ResourceName":      "arn:aws:rds:eu-west-1:123456789012:cluster:orders",
}

// renderer evaluates template values under a set of parameter values.
type renderer struct {
	tpl    *template
	params map[string]string
}

// newRenderer uses each parameter's default, requiredParamValues for those
// without one, and overrides on top. It fails the test if a value breaks the
// parameter's own constraints.
func newRenderer(t testing.TB, tpl *template, overrides map[string]string) *renderer {
	t.Helper()
	r := &renderer{tpl: tpl, params: map[string]string{}}
	for name, p := range tpl.Parameters {
		if d, ok := p["Default"]; ok {
			r.params[name] = scalarString(d)
		} else if v, ok := requiredParamValues[name]; ok {
			r.params[name] = v
		} else {
			t.Fatalf("parameter %s has no default and no test value", name)
		}
	}
	for k, v := range overrides {
		if _, ok := tpl.Parameters[k]; !ok {
			t.Fatalf("override of unknown parameter %s", k)
		}
		r.params[k] = v
	}
	for name, v := range r.params {
		if err := checkParamValue(tpl.Parameters[name], v); err != nil {
			t.Fatalf("parameter %s=%q: %v", name, v, err)
		}
	}
	return r
}

// checkParamValue applies the checks CloudFormation makes on a parameter
// value: AllowedValues, AllowedPattern, MinValue/MaxValue, MinLength/MaxLength.
func checkParamValue(p map[string]any, v string) error {
	typ, _ := p["Type"].(string)
	values := []string{v}
	if strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
		values = strings.Split(v, ",")
	}
	for _, v := range values {
		if av, ok := p["AllowedValues"].([]any); ok {
			found := false
			for _, a := range av {
				if scalarString(a) == v {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("not in AllowedValues %v", av)
			}
		}
		if pat, ok := p["AllowedPattern"].(string); ok {
			re, err := regexp.Compile(pat)
			if err != nil {
				return fmt.Errorf("AllowedPattern %q: %v", pat, err)
			}
			if loc := re.FindStringIndex(v); loc == nil || loc[0] != 0 || loc[1] != len(v) {
				return fmt.Errorf("does not match AllowedPattern %q", pat)
			}
		}
		if typ == "Number" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("not a number")
			}
			if mv, ok := p["MinValue"]; ok && n < toFloat(mv) {
				return fmt.Errorf("below MinValue %v", mv)
			}
			if mv, ok := p["MaxValue"]; ok && n > toFloat(mv) {
				return fmt.Errorf("above MaxValue %v", mv)
			}
		}
		if ml, ok := p["MinLength"]; ok && float64(len(v)) < toFloat(ml) {
			return fmt.Errorf("shorter than MinLength %v", ml)
		}
		if ml, ok := p["MaxLength"]; ok && float64(len(v)) > toFloat(ml) {
			return fmt.Errorf("longer than MaxLength %v", ml)
		}
	}
	return nil
}

func toFloat(v any) float64 {
	f, err := strconv.ParseFloat(scalarString(v), 64)
	if err != nil {
		return 0
	}
	return f
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// absent is what AWS::NoValue renders to; render drops it from maps and lists.
type absentT struct{}

var absent = absentT{}

// refPlaceholder and attPlaceholder are how render shows values only known
// at deploy time.
func refPlaceholder(res string) string       { return "{{Ref:" + res + "}}" }
func attPlaceholder(res, attr string) string { return "{{" + res + "." + attr + "}}" }

// render evaluates v. Resource references become placeholders, Fn::Base64
// returns its argument unencoded.
func (r *renderer) render(v any) (any, error) {
	if fn, arg, ok := intrinsic(v); ok {
		return r.fn(fn, arg)
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			rv, err := r.render(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if rv != absent {
				out[k] = rv
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, val := range x {
			rv, err := r.render(val)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if rv != absent {
				out = append(out, rv)
			}
		}
		return out, nil
	}
	return v, nil
}

func (r *renderer) mustRender(t testing.TB, v any) any {
	t.Helper()
	out, err := r.render(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resource renders a resource's Properties; ok is false when the resource's
// Condition is false.
func (r *renderer) resource(t testing.TB, name string) (props map[string]any, ok bool) {
	t.Helper()
	res, found := r.tpl.Resources[name]
	if !found {
		t.Fatalf("no resource %s", name)
	}
	if c, has := res["Condition"].(string); has {
		v, err := r.condition(c)
		if err != nil {
			t.Fatal(err)
		}
		if !v {
			return nil, false
		}
	}
	return asMap(r.mustRender(t, res["Properties"])), true
}

func (r *renderer) ref(name string) (any, error) {
	if name == "AWS::NoValue" {
		return absent, nil
	}
	if v, ok := pseudo[name]; ok {
		return v, nil
	}
	if v, ok := r.params[name]; ok {
		typ, _ := r.tpl.Parameters[name]["Type"].(string)
		if strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			var out []any
			for _, s := range strings.Split(v, ",") {
				out = append(out, s)
			}
			return out, nil
		}
		return v, nil
	}
	if _, ok := r.tpl.Resources[name]; ok {
		return refPlaceholder(name), nil
	}
	return nil, fmt.Errorf("Ref to unknown %q", name)
}

func (r *renderer) fn(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref argument is not a string")
		}
		return r.ref(name)
	case "Fn::GetAtt":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt wants [resource, attribute]")
		}
		res, attr := scalarString(parts[0]), scalarString(parts[1])
		if _, ok := r.tpl.Resources[res]; !ok {
			return nil, fmt.Errorf("Fn::GetAtt of unknown resource %q", res)
		}
		return attPlaceholder(res, attr), nil
	case "Fn::If":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("Fn::If wants [condition, then, else]")
		}
		c, err := r.condition(scalarString(parts[0]))
		if err != nil {
			return nil, err
		}
		if c {
			return r.render(parts[1])
		}
		return r.render(parts[2])
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::Join":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Join wants [delimiter, list]")
		}
		list, err := r.render(parts[1])
		if err != nil {
			return nil, err
		}
		items, ok := list.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join of a non-list")
		}
		strs := make([]string, len(items))
		for i, it := range items {
			strs[i] = scalarString(it)
		}
		return strings.Join(strs, scalarString(parts[0])), nil
	case "Fn::Split":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Split wants [delimiter, string]")
		}
		s, err := r.render(parts[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(scalarString(s), scalarString(parts[0])) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Select":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Select wants [index, list]")
		}
		idx, err := strconv.Atoi(scalarString(parts[0]))
		if err != nil {
			return nil, err
		}
		list, err := r.render(parts[1])
		if err != nil {
			return nil, err
		}
		items, ok := list.([]any)
		if !ok || idx < 0 || idx >= len(items) {
			return nil, fmt.Errorf("Fn::Select index %d out of range", idx)
		}
		return items[idx], nil
	case "Fn::Base64":
		return r.render(arg)
	}
	return nil, fmt.Errorf("render does not support %s", fn)
}

// subVar matches ${Name}, ${Name.Attr} and the literal escape ${!Text}.
var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// subVars lists the variable names a Fn::Sub string uses (escapes excluded).
func subVars(s string) []string {
	var out []string
	for _, m := range subVar.FindAllStringSubmatch(s, -1) {
		if !strings.HasPrefix(m[1], "!") {
			out = append(out, m[1])
		}
	}
	return out
}

func (r *renderer) sub(arg any) (any, error) {
	var (
		s    string
		vars = map[string]any{}
	)
	switch a := arg.(type) {
	case string:
		s = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub wants a string or [string, map]")
		}
		s, _ = a[0].(string)
		for k, v := range asMap(a[1]) {
			rv, err := r.render(v)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = rv
		}
	default:
		return nil, fmt.Errorf("Fn::Sub wants a string or [string, map]")
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return scalarString(v)
		}
		if res, attr, ok := strings.Cut(name, "."); ok {
			if _, found := r.tpl.Resources[res]; found {
				return attPlaceholder(res, attr)
			}
		}
		v, err := r.ref(name)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub: %w", err)
		}
		return scalarString(v)
	})
	return out, firstErr
}

// condition evaluates a named condition.
func (r *renderer) condition(name string) (bool, error) {
	c, ok := r.tpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("unknown condition %q", name)
	}
	return r.condExpr(c)
}

func (r *renderer) condExpr(v any) (bool, error) {
	fn, arg, ok := intrinsic(v)
	if !ok {
		return false, fmt.Errorf("condition is not an intrinsic function: %v", v)
	}
	args, _ := arg.([]any)
	switch fn {
	case "Condition":
		return r.condition(scalarString(arg))
	case "Fn::Equals":
		if len(args) != 2 {
			return false, fmt.Errorf("Fn::Equals wants two values")
		}
		a, err := r.render(args[0])
		if err != nil {
			return false, err
		}
		b, err := r.render(args[1])
		if err != nil {
			return false, err
		}
		return scalarString(a) == scalarString(b), nil
	case "Fn::Not":
		if len(args) != 1 {
			return false, fmt.Errorf("Fn::Not wants one condition")
		}
		c, err := r.condExpr(args[0])
		return !c, err
	case "Fn::And", "Fn::Or":
		if len(args) < 2 || len(args) > 10 {
			return false, fmt.Errorf("%s wants 2 to 10 conditions", fn)
		}
		for _, a := range args {
			c, err := r.condExpr(a)
			if err != nil {
				return false, err
			}
			if fn == "Fn::And" && !c {
				return false, nil
			}
			if fn == "Fn::Or" && c {
				return true, nil
			}
		}
		return fn == "Fn::And", nil
	}
	return false, fmt.Errorf("%s is not a condition function", fn)
}

// walk calls f for every value in v, depth first, with its path.
func walk(v any, path []string, f func(path []string, v any)) {
	f(path, v)
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(x[k], append(path[:len(path):len(path)], k), f)
		}
	case []any:
		for i, val := range x {
			walk(val, append(path[:len(path):len(path)], strconv.Itoa(i)), f)
		}
	}
}
