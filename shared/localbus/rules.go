package localbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/walbridge/walbridge/shared/cfnrules"
	"github.com/walbridge/walbridge/shared/pattern"
)

// AnyBus is Rule.EventBus for a rule that applies to events on every bus.
const AnyBus = "*"

// DefaultBus is the name of the account's default event bus, where an entry
// without EventBusName goes.
const DefaultBus = "default"

// DevRulesDir is the folder, inside the rules folder, that holds dev rule
// files.
const DevRulesDir = "dev-rules"

// Rule is one rule the bus evaluates against every event on its bus.
type Rule struct {
	// Name is the template's logical ID ("Function.Events.Name" for a SAM
	// event), or a dev rule's Name.
	Name string
	// File is the file the rule was read from.
	File string
	// EventBus is the name of the bus the rule belongs to, or AnyBus.
	EventBus string
	// BusNote says why a template rule applies to any bus.
	BusNote string
	// Pattern is the rule's event pattern, and PatternJSON its text. For a
	// subscriber they are its DATA filter, nil when it has none.
	Pattern     *pattern.Pattern
	PatternJSON []byte
	// Subscriber marks a subscriber of an ordered bus (a template's
	// AWS::EventsV2::Subscriber): it sees only events published to an
	// ordered bus, and template rules only events of classic buses. Dev
	// rules see both.
	Subscriber bool
	// Dev marks a dev rule file's rule.
	Dev bool
	// SystemPattern is a subscriber's SYSTEM_METADATA filter, matched
	// against {"EventGroupId": ..., "DeduplicationId": ...}. A METADATA
	// filter can never match: PutEvents events carry no metadata.
	SystemPattern *pattern.Pattern
	NoMetadata    bool
	// Targets are where matching events go. Template targets are only
	// named; dev rule targets are HTTP endpoints the bus delivers to.
	Targets []Target
}

// Target is one target of a Rule.
type Target struct {
	// ID is the target's Id.
	ID string
	// Resource and ResourceType name a template target that is a resource of
	// the same template; Arn is a template target given by a literal ARN.
	Resource, ResourceType, Arn string
	// URL is a dev rule target's HTTP endpoint; the bus POSTs each matching
	// event there.
	URL string
	// Function says URL is a function's invocation endpoint under the
	// Lambda runtime interface emulator (package localfn runs a template's
	// functions and sets it): the POST is an invocation, and an answer in
	// Lambda's error form is a failed delivery.
	Function bool
	// Resolve asks for the event with its claim-check references replaced
	// by their values (a dev rule target's "ResolveReferences": true).
	Resolve bool
}

// String describes the target the way the event log shows it:
// "WelcomeQueue (AWS::SQS::Queue)", "hook (http://127.0.0.1:9000/hook)".
func (t Target) String() string {
	switch {
	case t.Function:
		return fmt.Sprintf("%s (%s, run locally)", t.Resource, t.ResourceType)
	case t.URL != "":
		return fmt.Sprintf("%s (%s)", t.ID, t.URL)
	case t.Resource != "":
		return fmt.Sprintf("%s (%s)", t.Resource, t.ResourceType)
	case t.Arn != "":
		return fmt.Sprintf("%s (%s)", t.ID, t.Arn)
	}
	return t.ID
}

// Problem is a rule (or a whole file) that Load could not use, or a loaded
// rule whose pattern does not fit the DatabaseEvent contract.
type Problem struct {
	File string
	Rule string // empty for a problem with the file as a whole
	// Err is pattern.Errors for a pattern's problems.
	Err error
}

func (p Problem) Error() string {
	if p.Rule == "" {
		return fmt.Sprintf("%s: %v", p.File, p.Err)
	}
	return fmt.Sprintf("rule %s (%s): %v", p.Rule, p.File, p.Err)
}

// RuleSet is what Load found.
type RuleSet struct {
	// Rules are the rules the bus evaluates.
	Rules []Rule
	// Skipped are the rules and files that could not be used: an invalid
	// or unresolvable pattern, a DISABLED rule, a broken file.
	Skipped []Problem
	// Warnings are loaded rules whose pattern EventBridge accepts but that
	// does not fit the DatabaseEvent contract, so it likely never matches.
	Warnings []Problem
	// Duplicates are loaded rules whose name an earlier rule on the same
	// bus has.
	Duplicates []Problem
}

// LoadOptions shapes Load.
type LoadOptions struct {
	// Region is the value of AWS::Region in templates (default us-east-1).
	Region string
	// Params gives template parameters values; a parameter missing here
	// takes its Default.
	Params map[string]string
}

// Load reads the rules and ordered-bus subscribers of every CloudFormation
// or SAM template (*.yaml, *.yml, *.json) under dir, recursively, and the
// dev rule files dir/dev-rules/*.json. Files that are not templates are passed over, as are
// hidden folders and node_modules.
//
// A template rule's EventPattern may use Ref and Fn::Sub of parameters (and
// of AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix): they take
// their value from opts.Params, else the parameter's Default. A rule whose
// pattern is invalid or still uses an intrinsic is reported in Skipped with
// every problem found, and left out; the others load. A template rule whose
// EventBusName is an intrinsic (Ref, Fn::If...) applies to every bus, since
// its value is only known at deploy time.
//
// The error is for a dir that cannot be read at all.
func Load(dir string, opts LoadOptions) (*RuleSet, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("rules folder: %w", err)
	}
	region := opts.Region
	if region == "" {
		region = DefaultRegion
	}
	params := map[string]string{
		"AWS::Region":    region,
		"AWS::AccountId": Account,
		"AWS::Partition": "aws",
		"AWS::URLSuffix": "amazonaws.com",
	}
	for k, v := range opts.Params {
		params[k] = v
	}
	topts := cfnrules.Options{Params: params, Defaults: true}

	rs := &RuleSet{}
	devDir := filepath.Join(dir, DevRulesDir)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			rs.Skipped = append(rs.Skipped, Problem{File: path, Err: err})
			return nil
		}
		if d.IsDir() {
			name := d.Name()
			if path != dir && (strings.HasPrefix(name, ".") || name == "node_modules" || path == devDir) {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			rs.loadTemplate(path, topts)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	devFiles, err := filepath.Glob(filepath.Join(devDir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(devFiles)
	for _, f := range devFiles {
		rs.loadDevFile(f)
	}
	rs.warnDuplicates()
	return rs, nil
}

// warnDuplicates warns about two rules (or subscribers) of one name on one
// bus: the event log names matches by rule, so it could not tell them
// apart, and in AWS one of them would be another stack's or would replace
// the other.
func (rs *RuleSet) warnDuplicates() {
	type key struct{ bus, name string }
	first := map[key]Rule{}
	for _, r := range rs.Rules {
		k := key{r.EventBus, r.Name}
		if prev, ok := first[k]; ok {
			rs.Duplicates = append(rs.Duplicates, Problem{File: r.File, Rule: r.Name,
				Err: fmt.Errorf("the first is in %s: the event log cannot tell them apart; rename one", prev.File)})
			continue
		}
		first[k] = r
	}
}

// Watcher reloads a rules folder when a file Load reads (a template, a dev
// rule file), or a handler's source (*.go, *.ts), is added, changed or
// removed.
type Watcher struct {
	dir  string
	opts LoadOptions
	last string
}

// NewWatcher remembers dir's files as they are now: Run reports changes
// from here on.
func NewWatcher(dir string, opts LoadOptions) *Watcher {
	return &Watcher{dir: dir, opts: opts, last: fingerprint(dir)}
}

// Run checks every interval and, after a change, calls reload with what
// Load found (a folder Load cannot read comes as a RuleSet with that problem
// in Skipped). It returns when ctx is done.
func (w *Watcher) Run(ctx context.Context, interval time.Duration, reload func(*RuleSet)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := fingerprint(w.dir)
		if now == w.last {
			continue
		}
		w.last = now
		rs, err := Load(w.dir, w.opts)
		if err != nil {
			rs = &RuleSet{Skipped: []Problem{{File: w.dir, Err: err}}}
		}
		reload(rs)
	}
}

// fingerprint is the names, sizes and modification times of the files
// Load reads under dir.
func fingerprint(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != dir && (strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json", ".ts", ".go": // and handlers' code, which package localfn runs
			if info, err := d.Info(); err == nil {
				fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
			}
		}
		return nil
	})
	return b.String()
}

func (rs *RuleSet) loadTemplate(file string, opts cfnrules.Options) {
	data, err := os.ReadFile(file)
	if err != nil {
		rs.Skipped = append(rs.Skipped, Problem{File: file, Err: err})
		return
	}
	trs, err := cfnrules.Rules(data, opts)
	if errors.Is(err, cfnrules.ErrNotTemplate) {
		return
	}
	if err != nil {
		rs.Skipped = append(rs.Skipped, Problem{File: file, Err: err})
		return
	}
	for _, tr := range trs {
		if tr.Err != nil {
			rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: tr.ID, Err: pattern.Errors{tr.Err}})
			continue
		}
		if strings.EqualFold(tr.State, "DISABLED") {
			rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: tr.ID, Err: errors.New("State is DISABLED")})
			continue
		}
		r := Rule{Name: tr.ID, File: file, EventBus: busName(tr.EventBus)}
		if tr.EventBusIntrinsic != "" {
			r.EventBus = AnyBus
			r.BusNote = "EventBusName is " + tr.EventBusIntrinsic + ", known only at deploy time"
		}
		for _, tt := range tr.Targets {
			r.Targets = append(r.Targets, Target{ID: tt.ID, Resource: tt.Resource, ResourceType: tt.ResourceType, Arn: tt.Arn})
		}
		rs.add(r, tr.Pattern)
	}
	rs.loadSubscribers(file, data, opts)
}

// loadSubscribers adds a template's ordered-bus subscribers, each as one
// Rule holding its filters.
func (rs *RuleSet) loadSubscribers(file string, data []byte, opts cfnrules.Options) {
	filters, err := cfnrules.Subscribers(data, opts)
	if err != nil {
		rs.Skipped = append(rs.Skipped, Problem{File: file, Err: err})
		return
	}
	var sub *Rule
	var dataFilter []byte
	broken := false
	flush := func() {
		if sub != nil && !broken {
			if dataFilter == nil {
				rs.Rules = append(rs.Rules, *sub) // no DATA filter: every event
			} else {
				rs.add(*sub, dataFilter)
			}
		}
		sub, dataFilter, broken = nil, nil, false
	}
	for _, f := range filters {
		if sub == nil || sub.Name != f.Subscriber {
			flush()
			sub = &Rule{Name: f.Subscriber, File: file, Subscriber: true, EventBus: orderedBusName(f.EventBus)}
			if f.EventBusIntrinsic != "" {
				sub.EventBus = AnyBus
				sub.BusNote = "EventBusArn is " + f.EventBusIntrinsic + ", known only at deploy time"
			}
			sub.Targets = []Target{{ID: f.Target.Arn, Resource: f.Target.Resource, ResourceType: f.Target.ResourceType, Arn: f.Target.Arn}}
		}
		if broken {
			continue
		}
		if f.Err != nil {
			rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: f.ID(), Err: pattern.Errors{f.Err}})
			broken = true
			continue
		}
		switch f.Scope {
		case "DATA":
			dataFilter = f.Pattern
		case "SYSTEM_METADATA":
			p, err := pattern.Parse(f.Pattern)
			if err != nil {
				rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: f.ID(), Err: err})
				broken = true
				continue
			}
			sub.SystemPattern = p
		case "METADATA":
			sub.NoMetadata = true
		default:
			rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: f.ID(), Err: fmt.Errorf("scope %q: want DATA, METADATA or SYSTEM_METADATA", f.Scope)})
			broken = true
		}
	}
	flush()
}

// devRule is the dev rule file format; see the package documentation.
type devRule struct {
	Name         string
	EventBusName string
	EventPattern json.RawMessage
	Targets      []struct {
		ID  string `json:"Id"`
		URL string `json:"Url"`
		// ResolveReferences asks for events whose claim-check references
		// are replaced by their values (Options.Resolve).
		ResolveReferences bool `json:"ResolveReferences"`
	}
}

func (rs *RuleSet) loadDevFile(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		rs.Skipped = append(rs.Skipped, Problem{File: file, Err: err})
		return
	}
	var list []devRule
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		err = decodeStrict(data, &list)
	} else {
		var one devRule
		err = decodeStrict(data, &one)
		list = []devRule{one}
	}
	if err != nil {
		rs.Skipped = append(rs.Skipped, Problem{File: file, Err: fmt.Errorf("dev rule file: %w", err)})
		return
	}
	for i, dr := range list {
		name := dr.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		r, p, err := devRuleToRule(dr, name, file)
		if err != nil {
			rs.Skipped = append(rs.Skipped, Problem{File: file, Rule: name, Err: err})
			continue
		}
		rs.add(r, p)
	}
}

// devRuleToRule checks a dev rule and returns it with its pattern's text.
func devRuleToRule(dr devRule, name, file string) (Rule, []byte, error) {
	if dr.Name == "" {
		return Rule{}, nil, errors.New("Name is required")
	}
	p := bytes.TrimSpace(dr.EventPattern)
	if len(p) == 0 {
		return Rule{}, nil, errors.New("EventPattern is required")
	}
	if p[0] == '"' { // a string holding JSON, as the AWS API has it
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return Rule{}, nil, fmt.Errorf("EventPattern: %w", err)
		}
		p = []byte(s)
	}
	if len(dr.Targets) == 0 {
		return Rule{}, nil, errors.New("Targets: give at least one {\"Id\": ..., \"Url\": ...}")
	}
	r := Rule{Name: name, File: file, EventBus: AnyBus, Dev: true}
	if dr.EventBusName != AnyBus {
		r.EventBus = busName(dr.EventBusName)
	}
	for i, t := range dr.Targets {
		if t.ID == "" {
			return Rule{}, nil, fmt.Errorf("Targets[%d]: Id is required", i)
		}
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Rule{}, nil, fmt.Errorf("Targets[%d] %s: Url %q is not an http(s) URL", i, t.ID, t.URL)
		}
		r.Targets = append(r.Targets, Target{ID: t.ID, URL: t.URL, Resolve: t.ResolveReferences})
	}
	return r, p, nil
}

// add parses a rule's pattern and keeps the rule if EventBridge would accept
// the pattern. Every problem is reported, contract ones included, so that a
// rule author fixes a file in one pass.
func (rs *RuleSet) add(r Rule, patternJSON []byte) {
	problems := pattern.CheckJSON(patternJSON, pattern.CheckOptions{})
	p, err := pattern.Parse(patternJSON)
	if err != nil {
		if len(problems) == 0 {
			problems = pattern.Errors{{Msg: err.Error()}}
		}
		rs.Skipped = append(rs.Skipped, Problem{File: r.File, Rule: r.Name, Err: problems})
		return
	}
	if len(problems) > 0 {
		rs.Warnings = append(rs.Warnings, Problem{File: r.File, Rule: r.Name, Err: problems})
	}
	r.Pattern, r.PatternJSON = p, patternJSON
	rs.Rules = append(rs.Rules, r)
}

// Report writes what Load found, one line per rule and one per problem:
// what a developer starting the bus wants to see.
func (rs *RuleSet) Report(w io.Writer) {
	for _, r := range rs.Rules {
		bus := "bus " + r.EventBus
		if r.EventBus == AnyBus {
			bus = "any bus"
			if r.BusNote != "" {
				bus += " (" + r.BusNote + ")"
			}
		}
		targets := make([]string, len(r.Targets))
		for i, t := range r.Targets {
			targets[i] = t.String()
		}
		if len(targets) == 0 {
			targets = []string{"no targets"}
		}
		kind := "rule"
		if r.Subscriber {
			kind, bus = "subscriber", "ordered "+bus
		}
		fmt.Fprintf(w, "%s %s (%s) on %s → %s\n", kind, r.Name, r.File, bus, strings.Join(targets, ", "))
	}
	for _, p := range rs.Warnings {
		writeProblem(w, "warning: rule "+p.Rule+" ("+p.File+") loaded, but it likely never matches a DatabaseEvent:", p.Err)
	}
	for _, p := range rs.Duplicates {
		writeProblem(w, "warning: a second rule named "+p.Rule+" on its bus ("+p.File+"):", p.Err)
	}
	for _, p := range rs.Skipped {
		what := "rule " + p.Rule + " (" + p.File + ")"
		if p.Rule == "" {
			what = "file " + p.File
		}
		writeProblem(w, "skipped "+what+":", p.Err)
	}
}

func writeProblem(w io.Writer, head string, err error) {
	var errs pattern.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintf(w, "%s %v\n", head, err)
		return
	}
	fmt.Fprintln(w, head)
	for _, e := range errs {
		fmt.Fprintf(w, "  %v\n", e)
	}
}

// orderedBusName is the name in an ordered bus's ARN
// (arn:...:event-busv2/NAME/ID), or s itself.
func orderedBusName(s string) string {
	if _, rest, ok := strings.Cut(s, ":event-busv2/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return s
}

// busName turns an EventBusName (a name or an event bus ARN, empty for the
// default bus) into the bus's name.
func busName(s string) string {
	if s == "" {
		return DefaultBus
	}
	if strings.HasPrefix(s, "arn:") {
		if _, name, ok := strings.Cut(s, ":event-bus/"); ok {
			return name
		}
	}
	return s
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the rule")
	}
	return nil
}
