package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/walbridge/walbridge/shared/pattern"
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rulecheck [--columns-from-json FILE] [--detail-type NAME] FILE...")
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

	status := exitOK
	for _, name := range fs.Args() {
		lines := checkFile(name, opts)
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
func checkFile(name string, opts pattern.CheckOptions) []string {
	data, err := os.ReadFile(name)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	patterns, err := extract(name, data)
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
func extract(name string, data []byte) ([]found, error) {
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
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	root := deref(&doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return []found{fromNode("", root)}, nil
	}
	if res := lookup(root, "Resources"); res != nil {
		return templatePatterns(res), nil
	}
	if ep := lookup(root, "EventPattern"); ep != nil {
		return []found{fromNode("", ep)}, nil
	}
	return []found{fromNode("", root)}, nil
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

// templatePatterns collects the patterns of a CloudFormation/SAM template's
// Resources, in template order.
func templatePatterns(resources *yaml.Node) []found {
	var out []found
	resources = deref(resources)
	if resources == nil || resources.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id := resources.Content[i].Value
		res := deref(resources.Content[i+1])
		props := lookup(res, "Properties")
		if scalar(lookup(res, "Type")) == "AWS::Events::Rule" {
			if ep := lookup(props, "EventPattern"); ep != nil {
				out = append(out, fromNode(id, ep))
			}
		}
		// SAM: any resource with Events (functions, state machines).
		events := deref(lookup(props, "Events"))
		if events == nil || events.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(events.Content); j += 2 {
			ev := deref(events.Content[j+1])
			switch scalar(lookup(ev, "Type")) {
			case "EventBridgeRule", "CloudWatchEvent":
				if p := lookup(lookup(ev, "Properties"), "Pattern"); p != nil {
					out = append(out, fromNode(id+".Events."+events.Content[j].Value, p))
				}
			}
		}
	}
	return out
}

// fromNode turns a YAML pattern into JSON text for the checker. A string
// node is taken as JSON text, which CloudFormation also accepts.
func fromNode(where string, n *yaml.Node) found {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return found{where: where, json: []byte(n.Value)}
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, n, ""); err != nil {
		var fe *pattern.FieldError
		if errors.As(err, &fe) {
			return found{where: where, err: fe}
		}
		return found{where: where, err: &pattern.FieldError{Msg: err.Error()}}
	}
	return found{where: where, json: buf.Bytes()}
}

// writeJSON writes a YAML node as JSON, keeping key order and duplicate keys
// so the checker sees what was written. CloudFormation intrinsic functions
// are reported rather than guessed at: their value is only known at deploy
// time, so the pattern cannot be vouched for.
func writeJSON(buf *bytes.Buffer, n *yaml.Node, path string) error {
	n = deref(n)
	if n == nil {
		buf.WriteString("null")
		return nil
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return intrinsic(path, tag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 2 {
			if k := n.Content[0].Value; k == "Ref" || strings.HasPrefix(k, "Fn::") {
				return intrinsic(path, k)
			}
		}
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			key := n.Content[i].Value
			writeString(buf, key)
			buf.WriteByte(':')
			child := path + "." + key
			if path == "" {
				child = key
			}
			if err := writeJSON(buf, n.Content[i+1], child); err != nil {
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
			if err := writeJSON(buf, c, path); err != nil {
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

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

func intrinsic(path, name string) error {
	return &pattern.FieldError{Path: path, Msg: fmt.Sprintf("uses CloudFormation intrinsic %s, whose value is only known at deploy time; rulecheck cannot check it", name)}
}

// deref follows document and alias nodes to the value they stand for.
func deref(n *yaml.Node) *yaml.Node {
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
	n = deref(n)
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
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
