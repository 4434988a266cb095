package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/walbridge/walbridge/shared/cfnrules"
	"github.com/walbridge/walbridge/shared/pattern"
	"github.com/walbridge/walbridge/shared/policy"
)

// Exit statuses: 1 means a pattern has problems, 2 means rulecheck itself
// was called wrongly, so CI can tell a bad rule from a bad invocation.
const (
	exitOK       = 0
	exitProblems = 1
	exitUsage    = 2
)

// run is the whole command behind main, taking its arguments and output
// streams so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rulecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	columnsFile := fs.String("columns-from-json", "", `JSON file mapping "schema.table" (or "table") to its column names; enables table and column checks`)
	detailType := fs.String("detail-type", "DatabaseEvent", "the detail-type walbridge publishes; empty to skip the check")
	defaults := fs.Bool("defaults", false, "templates: resolve !Ref and !Sub of parameters from their Default values")
	policyFile := fs.String("policy", os.Getenv("WALBRIDGE_POLICY"), "capture's column policy: a pattern on an excluded or redacted column of the tables it selects is an error (env WALBRIDGE_POLICY)")
	params := paramFlag{}
	fs.Var(params, "param", "templates: a parameter's value, NAME=VALUE (repeatable; implies --defaults for the others)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rulecheck [--columns-from-json FILE] [--policy FILE] [--detail-type NAME] [--defaults] [--param NAME=VALUE]... FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	opts := pattern.CheckOptions{DetailType: *detailType}
	if *columnsFile != "" {
		tables, err := loadColumns(*columnsFile)
		if err != nil {
			fmt.Fprintf(stderr, "rulecheck: %v\n", err)
			return exitUsage
		}
		opts.Tables = tables
	}
	if *policyFile != "" {
		pol, err := policy.Load(*policyFile)
		if err != nil {
			fmt.Fprintf(stderr, "rulecheck: %v\n", err)
			return exitUsage
		}
		opts.Withheld = func(schema, table, column string) string {
			if _, skip := pol.Table(schema, table); skip {
				return string(policy.Exclude) // no event of the table at all
			}
			r, _ := pol.Column(schema, table, column)
			return string(r.Action)
		}
	}

	tpl := cfnrules.Options{}
	if *defaults || len(params) > 0 {
		tpl = cfnrules.Options{Params: params, Defaults: true}
	}
	status := exitOK
	for _, name := range fs.Args() {
		lines := checkFile(name, opts, tpl)
		if len(lines) == 0 {
			fmt.Fprintf(stdout, "%s: ok\n", name)
			continue
		}
		status = exitProblems
		for _, l := range lines {
			fmt.Fprintln(stdout, l)
		}
	}
	return status
}

// loadColumns reads the --columns-from-json file.
func loadColumns(name string) (map[string][]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	var tables map[string][]string
	if err := json.Unmarshal(data, &tables); err != nil {
		return nil, fmt.Errorf("columns file %s: want an object of \"schema.table\": [\"column\", ...]: %w", name, err)
	}
	return tables, nil
}

// found is one event pattern located in a file. where names it inside a
// template ("" for a file that is one pattern); err is set when the pattern
// could not be turned into JSON for checking. filter is set for a filter of
// an ordered-bus subscriber.
type found struct {
	where  string
	json   []byte
	err    *pattern.FieldError
	filter *cfnrules.Filter
}

// checkFile returns the problem lines for one file, empty when it passes.
// paramFlag is the repeatable --param NAME=VALUE.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	p[name] = value
	return nil
}

func checkFile(name string, opts pattern.CheckOptions, tpl cfnrules.Options) []string {
	data, err := os.ReadFile(name)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	patterns, err := extract(name, data, tpl)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	if len(patterns) == 0 {
		return []string{fmt.Sprintf("%s: no event patterns found", name)}
	}
	var lines []string
	scopes := map[[2]string]bool{} // subscriber, scope
	for _, p := range patterns {
		label := name
		if p.where != "" {
			label += "#" + p.where
		}
		if p.err != nil {
			lines = append(lines, label+": "+p.err.Error())
			continue
		}
		if p.filter != nil {
			for _, e := range filterProblems(*p.filter, opts) {
				lines = append(lines, label+": "+e)
			}
			key := [2]string{p.filter.Subscriber, p.filter.Scope}
			if scopes[key] {
				lines = append(lines, fmt.Sprintf("%s: a second %s filter: a subscriber has at most one filter per scope", label, p.filter.Scope))
			}
			scopes[key] = true
			continue
		}
		for _, e := range pattern.CheckJSON(p.json, opts) {
			lines = append(lines, label+": "+e.Error())
		}
	}
	return lines
}

// Limits of an ordered-bus subscriber's FilterConfiguration (EventBridgeV2
// API reference).
const (
	maxFilters       = 50
	maxFilterPattern = 4096
)

// filterProblems checks a subscriber's filter. A DATA filter sees the
// PutEvents envelope, so it must fit the DatabaseEvent contract like a
// rule; METADATA and SYSTEM_METADATA filters are checked for syntax only.
// Subscriber filters lack the wildcard operator that rules have.
func filterProblems(f cfnrules.Filter, opts pattern.CheckOptions) []string {
	var out []string
	switch f.Scope {
	case "DATA":
		for _, e := range pattern.CheckJSON(f.Pattern, opts) {
			out = append(out, e.Error())
		}
	case "METADATA", "SYSTEM_METADATA":
		if _, err := pattern.Parse(f.Pattern); err != nil {
			out = append(out, err.Error())
		}
	default:
		out = append(out, fmt.Sprintf("Scope %q: want DATA (the event: source, detail-type, detail, ...), METADATA or SYSTEM_METADATA", f.Scope))
	}
	if f.Language != "" && f.Language != "EVENT_BRIDGE_PATTERN" {
		out = append(out, fmt.Sprintf("Language %q: the only filter language is EVENT_BRIDGE_PATTERN", f.Language))
	}
	if n := len(f.Pattern); n > maxFilterPattern {
		out = append(out, fmt.Sprintf("the pattern is %d characters; a subscriber filter holds at most %d", n, maxFilterPattern))
	}
	if f.Index == 0 && (f.Count < 1 || f.Count > maxFilters) {
		out = append(out, fmt.Sprintf("%d filters; a subscriber has 1 to %d", f.Count, maxFilters))
	}
	for _, path := range operatorPaths(f.Pattern, "wildcard") {
		out = append(out, fmt.Sprintf("%s: subscriber filters have no \"wildcard\" operator (rules do): use prefix, suffix or equals-ignore-case", path))
	}
	return out
}

// operatorPaths returns the field paths at which a pattern uses the named
// operator ({"op": ...} inside a field's list).
func operatorPaths(data []byte, op string) []string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil // CheckJSON reports it
	}
	var out []string
	var walk func(v any, path string, inList bool)
	walk = func(v any, path string, inList bool) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x[op]; ok && inList {
				out = append(out, path)
				return
			}
			for k, c := range x {
				walk(c, pattern.JoinPath(path, k), false)
			}
		case []any:
			for _, c := range x {
				walk(c, path, true)
			}
		}
	}
	walk(v, "", false)
	slices.Sort(out)
	return out
}

// extract finds the event patterns in a file of any supported form. A .json
// file, or any file that is valid JSON, is read as JSON so that pattern
// errors are reported against the exact text; anything else is YAML.
func extract(name string, data []byte, tpl cfnrules.Options) ([]found, error) {
	if strings.EqualFold(filepath.Ext(name), ".json") || json.Valid(data) {
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil {
			if raw, ok := top["EventPattern"]; ok {
				return []found{patternFromRaw(raw)}, nil
			}
			if raw, ok := top["FilterConfiguration"]; ok {
				return subscriberFilters(raw, string(top["Type"]))
			}
			if _, ok := top["Resources"]; !ok {
				return []found{{json: data}}, nil
			}
			// A JSON template: YAML parses JSON, so walk it like a YAML one.
		} else {
			return []found{{json: data}}, nil // not an object: CheckJSON says what is wrong
		}
	}
	rules, err := cfnrules.Rules(data, tpl)
	switch {
	case errors.Is(err, cfnrules.ErrNotTemplate):
		js, err := cfnrules.YAMLPattern(data)
		var fe *pattern.FieldError
		switch {
		case errors.As(err, &fe):
			return []found{{err: fe}}, nil
		case err != nil:
			return nil, fmt.Errorf("not valid JSON or YAML: %w", err)
		}
		return []found{{json: js}}, nil
	case err != nil:
		return nil, err
	}
	filters, err := cfnrules.Subscribers(data, tpl)
	if err != nil {
		return nil, err
	}
	out := make([]found, 0, len(rules)+len(filters))
	for _, f := range filters {
		out = append(out, found{where: f.ID(), json: f.Pattern, err: deployTime(f.Err), filter: &f})
	}
	for _, r := range rules {
		out = append(out, found{where: r.ID, json: r.Pattern, err: deployTime(r.Err)})
	}
	return out, nil
}

// deployTime explains a pattern that could not be resolved: deploy-time
// values (intrinsic functions) can't be vouched for.
func deployTime(err *pattern.FieldError) *pattern.FieldError {
	if err == nil {
		return nil
	}
	return &pattern.FieldError{Path: err.Path, Msg: err.Msg + "; rulecheck cannot check it (--param NAME=VALUE or --defaults resolves parameters)"}
}

// subscriberFilters reads a subscriber as the EventBridgeV2 API shows it
// (describe-subscriber, or a CreateSubscriber input): its
// FilterConfiguration's filters.
func subscriberFilters(raw json.RawMessage, typ string) ([]found, error) {
	var fc struct {
		Language string
		Filters  []struct{ Pattern, Scope string }
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		return nil, fmt.Errorf("FilterConfiguration: want {\"Filters\": [{\"Scope\": ..., \"Pattern\": \"...\"}]}: %w", err)
	}
	if len(fc.Filters) == 0 {
		return []found{{where: "FilterConfiguration", err: &pattern.FieldError{Msg: fmt.Sprintf("no filters; a subscriber's FilterConfiguration has 1 to %d", maxFilters)}}}, nil
	}
	out := make([]found, len(fc.Filters))
	for i, f := range fc.Filters {
		filter := cfnrules.Filter{Subscriber: "FilterConfiguration", Index: i, Count: len(fc.Filters), Scope: f.Scope,
			Language: fc.Language, Pattern: []byte(f.Pattern), Type: strings.Trim(typ, `"`)}
		out[i] = found{where: filter.ID(), json: filter.Pattern, filter: &filter}
	}
	return out, nil
}

// patternFromRaw accepts an EventPattern given as an object or, as the AWS
// API returns it, as a string holding JSON.
func patternFromRaw(raw json.RawMessage) found {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return found{json: []byte(s)}
	}
	return found{json: raw}
}
