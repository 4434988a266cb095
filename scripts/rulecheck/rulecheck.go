package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// could not be turned into JSON for checking.
type found struct {
	where string
	json  []byte
	err   *pattern.FieldError
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
	for _, p := range patterns {
		label := name
		if p.where != "" {
			label += "#" + p.where
		}
		if p.err != nil {
			lines = append(lines, label+": "+p.err.Error())
			continue
		}
		for _, e := range pattern.CheckJSON(p.json, opts) {
			lines = append(lines, label+": "+e.Error())
		}
	}
	return lines
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
	out := make([]found, 0, len(rules))
	for _, r := range rules {
		f := found{where: r.ID, json: r.Pattern}
		if r.Err != nil {
			// Deploy-time values (intrinsic functions) can't be vouched for.
			f.err = &pattern.FieldError{Path: r.Err.Path, Msg: r.Err.Msg + "; rulecheck cannot check it (--param NAME=VALUE or --defaults resolves parameters)"}
		}
		out = append(out, f)
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
