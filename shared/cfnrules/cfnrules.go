// Package cfnrules reads the EventBridge rules that CloudFormation and SAM
// templates declare (AWS::Events::Rule, and SAM EventBridgeRule and
// CloudWatchEvent events), and the filters of subscribers to an ordered
// bus (AWS::EventsV2::Subscriber), turning each event pattern written in
// YAML, intrinsic functions resolved where a value is given, into the JSON
// text package pattern parses. rulecheck, the local bus and the infra tests
// read templates through it.
package cfnrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/walbridge/walbridge/shared/pattern"
	"gopkg.in/yaml.v3"
)

// ErrNotTemplate is returned (wrapped) by TemplateRules for a document that
// is valid YAML or JSON but has no Resources section, so it is not a
// CloudFormation or SAM template.
var ErrNotTemplate = errors.New("not a CloudFormation template: no Resources section")

// Rule is an EventBridge rule declared in a CloudFormation or SAM
// template: an AWS::Events::Rule with an EventPattern, or a SAM
// EventBridgeRule or CloudWatchEvent event of a function or state machine.
type Rule struct {
	// ID names the rule in the template: the logical ID of an
	// AWS::Events::Rule, or "Resource.Events.Name" for a SAM event.
	ID string
	// Pattern is the event pattern as JSON text, keys in template order
	// (duplicates kept, so Parse and CheckJSON see what was written). It is
	// nil when Err is set.
	Pattern []byte
	// Err says why the pattern could not be turned into JSON, typically an
	// intrinsic function whose value is only known at deploy time.
	Err *pattern.FieldError
	// EventBus is the EventBusName, a bus name or ARN, when the template
	// gives it as a literal. Empty means the default bus, unless
	// EventBusIntrinsic is set.
	EventBus string
	// EventBusIntrinsic names the intrinsic function the EventBusName is
	// computed with ("!If", "Ref", ...); the bus is then only known at
	// deploy time.
	EventBusIntrinsic string
	// State is the rule's State as written ("ENABLED", "DISABLED", ...);
	// empty when the template leaves it to the default, enabled.
	State string
	// Targets are the rule's targets in template order. A SAM event has one:
	// the resource that declares the event.
	Targets []Target
}

// Target is one target of a Rule.
type Target struct {
	// ID is the target's Id; empty for a SAM event that does not set
	// Target.Id.
	ID string
	// Arn is the target's Arn when the template gives it as a literal.
	Arn string
	// Resource is the logical ID of the template resource the target is,
	// when its Arn is Fn::GetAtt or Ref of a resource in the same template.
	Resource string
	// ResourceType is that resource's Type, such as "AWS::SQS::Queue".
	ResourceType string
}

// Options says how TemplateRules resolves intrinsic functions in
// event patterns. The zero value resolves none: each is reported in
// Rule.Err, because its value is only known at deploy time.
type Options struct {
	// Params gives the values of Ref and of ${Name} in Fn::Sub: template
	// parameters, and pseudo parameters such as AWS::Region.
	Params map[string]string
	// Defaults resolves a template parameter missing from Params to its
	// Default.
	Defaults bool
}

func (o Options) resolving() bool { return o.Params != nil || o.Defaults }

// TemplateRules returns the EventBridge rules of a CloudFormation or SAM
// template in YAML or JSON, in template order. Rules without an event
// pattern (schedules) are left out. A document that parses but is not a
// template gives an error wrapping ErrNotTemplate.
func Rules(data []byte, opts Options) ([]Rule, error) {
	t, err := parse(data, opts)
	if err != nil {
		return nil, err
	}
	resources := t.resources
	var out []Rule
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id := resources.Content[i].Value
		res := unalias(resources.Content[i+1])
		resType := scalar(lookup(res, "Type"))
		props := lookup(res, "Properties")
		if resType == "AWS::Events::Rule" {
			if ep := lookup(props, "EventPattern"); ep != nil {
				r := t.rule(id, ep, props)
				r.Targets = t.ruleTargets(lookup(props, "Targets"))
				out = append(out, r)
			}
		}
		// SAM: any resource with Events (functions, state machines).
		events := unalias(lookup(props, "Events"))
		if events == nil || events.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(events.Content); j += 2 {
			ev := unalias(events.Content[j+1])
			switch scalar(lookup(ev, "Type")) {
			case "EventBridgeRule", "CloudWatchEvent":
				evProps := lookup(ev, "Properties")
				p := lookup(evProps, "Pattern")
				if p == nil {
					continue
				}
				r := t.rule(id+".Events."+events.Content[j].Value, p, evProps)
				r.Targets = []Target{{
					ID:           scalar(lookup(lookup(evProps, "Target"), "Id")),
					Resource:     id,
					ResourceType: resType,
				}}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// Filter is one filter of an AWS::EventsV2::Subscriber: an event pattern
// with the part of the event it applies to. A subscriber receives an event
// only when every one of its filters matches.
type Filter struct {
	// Subscriber is the subscriber's logical ID; Index is the filter's
	// place in its FilterConfiguration.Filters, of Count.
	Subscriber   string
	Index, Count int
	// Scope is the filter's Scope as written: DATA (for PutEvents, the
	// envelope with the detail under "detail"), METADATA or SYSTEM_METADATA.
	Scope string
	// Language is FilterConfiguration.Language as written (empty: the
	// default, EVENT_BRIDGE_PATTERN).
	Language string
	// Pattern is the filter's pattern as JSON text, nil when Err is set.
	Pattern []byte
	Err     *pattern.FieldError
	// Type is the subscriber's Type as written: FIFO or UNORDERED.
	Type string
	// State is the subscriber's State as written.
	State string
	// EventBus is EventBusArn when the template gives it as a literal;
	// EventBusIntrinsic names the intrinsic function it is computed with.
	EventBus, EventBusIntrinsic string
	// Target is InvokeConfiguration.TargetArn.
	Target Target
}

// ID names the filter in the template: "Subscriber.Filters[i]".
func (f Filter) ID() string { return fmt.Sprintf("%s.Filters[%d]", f.Subscriber, f.Index) }

// Subscribers returns the filters of the template's ordered-bus
// subscribers, in template order. A subscriber without filters (it
// receives every event) has none here.
func Subscribers(data []byte, opts Options) ([]Filter, error) {
	t, err := parse(data, opts)
	if err != nil {
		return nil, err
	}
	var out []Filter
	for i := 0; i+1 < len(t.resources.Content); i += 2 {
		id := t.resources.Content[i].Value
		res := unalias(t.resources.Content[i+1])
		if scalar(lookup(res, "Type")) != "AWS::EventsV2::Subscriber" {
			continue
		}
		props := lookup(res, "Properties")
		fc := lookup(props, "FilterConfiguration")
		filters := unalias(lookup(fc, "Filters"))
		if filters == nil || filters.Kind != yaml.SequenceNode {
			continue
		}
		base := Filter{Subscriber: id, Count: len(filters.Content), Language: scalar(lookup(fc, "Language")),
			Type: scalar(lookup(props, "Type")), State: scalar(lookup(props, "State"))}
		if bus := lookup(props, "EventBusArn"); bus != nil {
			if name := intrinsicName(bus); name != "" {
				base.EventBusIntrinsic = name
			} else {
				base.EventBus = scalar(bus)
			}
		}
		if arn := unalias(lookup(lookup(props, "InvokeConfiguration"), "TargetArn")); arn != nil {
			if intrinsicName(arn) == "" {
				base.Target.Arn = scalar(arn)
			} else if res := t.referencedResource(arn); res != "" {
				base.Target.Resource = res
				base.Target.ResourceType = scalar(lookup(lookup(t.resources, res), "Type"))
			}
		}
		for j, fl := range filters.Content {
			f := base
			f.Index, f.Scope = j, scalar(lookup(fl, "Scope"))
			f.Pattern, f.Err = t.patternJSON(lookup(fl, "Pattern"))
			out = append(out, f)
		}
	}
	return out, nil
}

// parse reads a template's Parameters and Resources.
func parse(data []byte, opts Options) (*template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	resources := unalias(lookup(unalias(&doc), "Resources"))
	if resources == nil || resources.Kind != yaml.MappingNode {
		return nil, ErrNotTemplate
	}
	return &template{opts: opts, params: unalias(lookup(unalias(&doc), "Parameters")), resources: resources}, nil
}

// YAMLPattern returns the JSON text of an event pattern written in YAML (or
// JSON). A document that is a mapping with an EventPattern key, as
// describe-rule prints a rule, stands for that key's value; an EventPattern
// given as a string is taken as JSON text. The error is a *pattern.FieldError for a
// value JSON cannot hold, such as an intrinsic function.
func YAMLPattern(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	n := unalias(&doc)
	if ep := lookup(n, "EventPattern"); ep != nil {
		n = ep
	}
	t := &template{}
	js, fe := t.patternJSON(n)
	if fe != nil {
		return nil, fe
	}
	return js, nil
}

// template is one template being read.
type template struct {
	opts      Options
	params    *yaml.Node // the Parameters mapping, or nil
	resources *yaml.Node // the Resources mapping
}

// rule fills the fields that AWS::Events::Rule and the SAM events share.
func (t *template) rule(id string, pattern, props *yaml.Node) Rule {
	r := Rule{ID: id, State: scalar(lookup(props, "State"))}
	r.Pattern, r.Err = t.patternJSON(pattern)
	if bus := lookup(props, "EventBusName"); bus != nil {
		if name := intrinsicName(bus); name != "" {
			r.EventBusIntrinsic = name
		} else {
			r.EventBus = scalar(bus)
		}
	}
	return r
}

// ruleTargets reads an AWS::Events::Rule's Targets list.
func (t *template) ruleTargets(list *yaml.Node) []Target {
	list = unalias(list)
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	var out []Target
	for _, item := range list.Content {
		tg := Target{ID: scalar(lookup(item, "Id"))}
		arn := unalias(lookup(item, "Arn"))
		if intrinsicName(arn) == "" {
			tg.Arn = scalar(arn)
		} else if res := t.referencedResource(arn); res != "" {
			tg.Resource = res
			tg.ResourceType = scalar(lookup(lookup(t.resources, res), "Type"))
		}
		out = append(out, tg)
	}
	return out
}

// referencedResource returns the logical ID that a Ref or Fn::GetAtt names,
// when it is a resource of this template.
func (t *template) referencedResource(n *yaml.Node) string {
	name, arg := intrinsicName(n), intrinsicArg(n)
	var id string
	switch name {
	case "!Ref", "Ref":
		id = scalar(arg)
	case "!GetAtt", "Fn::GetAtt":
		if arg.Kind == yaml.ScalarNode {
			id, _, _ = strings.Cut(arg.Value, ".")
		} else if arg.Kind == yaml.SequenceNode && len(arg.Content) > 0 {
			id = scalar(arg.Content[0])
		}
	}
	if id == "" || lookup(t.resources, id) == nil {
		return ""
	}
	return id
}

// patternJSON turns a YAML pattern into JSON text. A string is taken as
// JSON text, which CloudFormation also accepts (a subscriber's filter is
// always one), and so is a string an intrinsic function gives (!Sub).
func (t *template) patternJSON(n *yaml.Node) ([]byte, *pattern.FieldError) {
	n = unalias(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return []byte(n.Value), nil
	}
	if name := intrinsicName(n); name != "" {
		s, err := t.resolve(name, intrinsicArg(n), "")
		if err != nil {
			var fe *pattern.FieldError
			if errors.As(err, &fe) {
				return nil, fe
			}
			return nil, &pattern.FieldError{Msg: err.Error()}
		}
		return []byte(s), nil
	}
	var buf bytes.Buffer
	if err := t.writeJSON(&buf, n, ""); err != nil {
		var fe *pattern.FieldError
		if errors.As(err, &fe) {
			return nil, fe
		}
		return nil, &pattern.FieldError{Msg: err.Error()}
	}
	return buf.Bytes(), nil
}

// writeJSON writes a YAML node as JSON, keeping key order and duplicate keys
// so the checker sees what was written. Intrinsic functions are resolved
// where the options allow and reported otherwise.
func (t *template) writeJSON(buf *bytes.Buffer, n *yaml.Node, path string) error {
	n = unalias(n)
	if n == nil {
		buf.WriteString("null")
		return nil
	}
	if name := intrinsicName(n); name != "" {
		s, err := t.resolve(name, intrinsicArg(n), path)
		if err != nil {
			return err
		}
		writeString(buf, s)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			key := n.Content[i].Value
			writeString(buf, key)
			buf.WriteByte(':')
			if err := t.writeJSON(buf, n.Content[i+1], pattern.JoinPath(path, key)); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := t.writeJSON(buf, c, path); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		return writeScalar(buf, n, path)
	default:
		return &pattern.FieldError{Path: path, Msg: "unsupported YAML node"}
	}
	return nil
}

func writeScalar(buf *bytes.Buffer, n *yaml.Node, path string) error {
	switch n.ShortTag() {
	case "!!null":
		buf.WriteString("null")
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return &pattern.FieldError{Path: path, Msg: fmt.Sprintf("bad boolean %q: %v", n.Value, err)}
		}
		buf.WriteString(strconv.FormatBool(b))
	case "!!int", "!!float":
		if json.Valid([]byte(n.Value)) {
			buf.WriteString(n.Value) // keep the number as written (3.018e2)
			return nil
		}
		var f float64 // YAML-only spellings such as 0x1F or +5
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return &pattern.FieldError{Path: path, Msg: fmt.Sprintf("number %s cannot be written as JSON", n.Value)}
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default: // !!str, and !!timestamp or !!binary, which JSON can only hold as text
		writeString(buf, n.Value)
	}
	return nil
}

// writeString writes s as a JSON string, leaving <, > and & as they are so
// the pattern reads as written.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)               // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode ends with a newline
}

// resolve gives the string an intrinsic function stands for, when the
// options allow: Ref of a parameter, and Fn::Sub of a string whose ${Name}
// variables are all parameters.
func (t *template) resolve(name string, arg *yaml.Node, path string) (string, error) {
	deployTime := &pattern.FieldError{Path: path, Msg: fmt.Sprintf("uses CloudFormation intrinsic %s, whose value is only known at deploy time", name)}
	if !t.opts.resolving() {
		return "", deployTime
	}
	switch name {
	case "!Ref", "Ref":
		ref := scalar(arg)
		if v, ok := t.param(ref); ok {
			return v, nil
		}
		return "", t.unresolved(path, name+" "+ref, ref, deployTime)
	case "!Sub", "Fn::Sub":
		if arg == nil || arg.Kind != yaml.ScalarNode {
			return "", deployTime // the list form's variables are expressions
		}
		return t.sub(name, arg.Value, path, deployTime)
	}
	return "", deployTime
}

// sub substitutes the ${Name} variables of an Fn::Sub string; ${!Text} is
// the literal ${Text}.
func (t *template) sub(name, s, path string, deployTime *pattern.FieldError) (string, error) {
	var out strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			out.WriteString(s)
			return out.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			out.WriteString(s)
			return out.String(), nil
		}
		out.WriteString(s[:i])
		v := s[i+2 : i+j]
		if lit, ok := strings.CutPrefix(v, "!"); ok {
			out.WriteString("${" + lit + "}")
		} else if val, ok := t.param(v); ok {
			out.WriteString(val)
		} else {
			return "", t.unresolved(path, name+" ${"+v+"}", v, deployTime)
		}
		s = s[i+j+1:]
	}
}

// param looks a parameter up in the options, then, when allowed, in the
// template's Defaults.
func (t *template) param(name string) (string, bool) {
	if v, ok := t.opts.Params[name]; ok {
		return v, true
	}
	if !t.opts.Defaults {
		return "", false
	}
	p := lookup(t.params, name)
	if p == nil {
		return "", false
	}
	if d := unalias(lookup(p, "Default")); d != nil && d.Kind == yaml.ScalarNode {
		return d.Value, true
	}
	return "", false
}

// unresolved explains a variable that has no value: a template parameter
// without one is the caller's to give, anything else is a deploy-time value.
func (t *template) unresolved(path, what, name string, deployTime *pattern.FieldError) error {
	if lookup(t.params, name) != nil {
		return &pattern.FieldError{Path: path, Msg: fmt.Sprintf("uses %s: parameter %s has no Default and no value was given", what, name)}
	}
	return deployTime
}

// intrinsicName returns the intrinsic function a node is ("!Ref",
// "Fn::GetAtt", ...), or "".
func intrinsicName(n *yaml.Node) string {
	n = unalias(n)
	if n == nil {
		return ""
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return tag
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		if k := n.Content[0].Value; k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k
		}
	}
	return ""
}

// intrinsicArg returns an intrinsic function's argument node.
func intrinsicArg(n *yaml.Node) *yaml.Node {
	n = unalias(n)
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return n
	}
	return unalias(n.Content[1])
}

// unalias follows document and alias nodes to the value they stand for.
func unalias(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && depth < 100; depth++ {
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		case yaml.AliasNode:
			n = n.Alias
		default:
			return n
		}
	}
	return n
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	n = unalias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	n = unalias(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
