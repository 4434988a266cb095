// Package policy is walbridge's column policy: which columns never leave the
// database host, and in what form the others do. Capture applies it before a
// change is encoded, so an excluded or redacted value never reaches Kinesis,
// a log line or the Lambda; the tools (status, typegen, rulecheck) read the
// same file to show what consumers will see.
//
// A policy is a YAML file:
//
//	columns:
//	  - match: public.users.password_digest   # schema.table.column, globs allowed
//	    action: exclude                       # the column is not in change records at all
//	  - match: "*.*.email"
//	    action: hash                          # keyed HMAC-SHA256 (hex) of the text form
//	  - match: public.users.ssn
//	    action: redact                        # {"type": T, "redacted": true}
//	tables:
//	  - match: audit.*                        # schema.table
//	    action: skip                          # not captured at all
//
// Globs are path.Match patterns over the dotted name (* and ? do not cross
// a dot, so "*.*.token" covers every schema and table); the first rule that
// matches decides, so tables and columns created later by migrations are
// covered by the rules already there. Key columns may be hashed (partition
// keys stay stable) but not excluded or redacted: Plan refuses that.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Action is what a rule does.
type Action string

// The actions: Exclude, Hash and Redact for columns, Skip for tables.
const (
	Exclude Action = "exclude"
	Hash    Action = "hash"
	Redact  Action = "redact"
	Skip    Action = "skip"
)

// Rule is one line of the policy.
type Rule struct {
	Match  string `yaml:"match"`
	Action Action `yaml:"action"`
	// Line is where the rule starts in its file, for messages.
	Line int `yaml:"-"`
}

// Policy is a parsed, validated policy file. The zero value (and nil)
// captures every column as it is.
type Policy struct {
	File    string
	Columns []Rule
	Tables  []Rule
}

// Load reads and validates a policy file. Errors name the file and line.
func Load(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, file)
}

// Parse reads and validates a policy; name is the file's name for messages.
func Parse(data []byte, name string) (*Policy, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Policy{File: name}
	if doc.Kind == 0 { // empty file
		return p, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with columns and tables", name, root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		var list *[]Rule
		var allowed []Action
		var depth int
		switch key.Value {
		case "columns":
			list, allowed, depth = &p.Columns, []Action{Exclude, Hash, Redact}, 3
		case "tables":
			list, allowed, depth = &p.Tables, []Action{Skip}, 2
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q (want columns or tables)", name, key.Line, key.Value)
		}
		if val.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%s:%d: %s must be a list of rules", name, val.Line, key.Value)
		}
		for _, item := range val.Content {
			r, err := parseRule(item, name, allowed, depth)
			if err != nil {
				return nil, err
			}
			*list = append(*list, r)
		}
	}
	return p, nil
}

func parseRule(n *yaml.Node, name string, allowed []Action, depth int) (Rule, error) {
	r := Rule{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return r, fmt.Errorf("%s:%d: a rule is a mapping with match and action", name, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "match":
			r.Match = v.Value
		case "action":
			r.Action = Action(v.Value)
		default:
			return r, fmt.Errorf("%s:%d: unknown key %q in a rule (want match and action)", name, k.Line, k.Value)
		}
	}
	if r.Match == "" {
		return r, fmt.Errorf("%s:%d: rule without match", name, n.Line)
	}
	if got := strings.Count(r.Match, ".") + 1; got != depth {
		return r, fmt.Errorf("%s:%d: match %q has %d dotted parts; want %d (%s)", name, n.Line, r.Match, got, depth,
			map[int]string{2: "schema.table", 3: "schema.table.column"}[depth])
	}
	if _, err := path.Match(r.Match, ""); err != nil {
		return r, fmt.Errorf("%s:%d: match %q: %w", name, n.Line, r.Match, err)
	}
	ok := false
	for _, a := range allowed {
		ok = ok || r.Action == a
	}
	if !ok {
		return r, fmt.Errorf("%s:%d: action %q: want one of %v", name, n.Line, r.Action, allowed)
	}
	return r, nil
}

// Column is the rule for schema.table.column, if one matches.
func (p *Policy) Column(schema, table, column string) (Rule, bool) {
	if p == nil {
		return Rule{}, false
	}
	return first(p.Columns, schema+"."+table+"."+column)
}

// Table is the table rule for schema.table, if one matches.
func (p *Policy) Table(schema, table string) (Rule, bool) {
	if p == nil {
		return Rule{}, false
	}
	return first(p.Tables, schema+"."+table)
}

// Hashes reports whether any rule hashes: the policy then needs a key.
func (p *Policy) Hashes() bool {
	if p == nil {
		return false
	}
	for _, r := range p.Columns {
		if r.Action == Hash {
			return true
		}
	}
	return false
}

// Where names a rule for messages: "file:line (match -> action)".
func (p *Policy) Where(r Rule) string {
	return fmt.Sprintf("%s:%d (%s: %s)", p.File, r.Line, r.Match, r.Action)
}

func first(rules []Rule, name string) (Rule, bool) {
	for _, r := range rules {
		if ok, _ := path.Match(r.Match, name); ok {
			return r, true
		}
	}
	return Rule{}, false
}
