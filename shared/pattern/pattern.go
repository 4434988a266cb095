// Package pattern parses, validates and evaluates Amazon EventBridge event
// patterns, and checks them against the DatabaseEvent contract that walbridge
// publishes.
//
// It exists so that a rule that can never fire (a misspelt field, a bare
// string where EventBridge wants an array, an operation that walbridge never
// sends) is caught in a test or CI run instead of silently dropping events in
// production: EventBridge accepts many such patterns and simply never matches.
//
// Parse follows EventBridge's validation: every leaf is a non-empty array of
// values or operator objects, operators are the documented ones with their
// documented argument shapes, "$or" takes at least two objects, and empty
// objects are refused. Match follows EventBridge's matching: fields AND
// together, the values in a leaf array OR together, an event array matches
// when any element does, an absent field matches only {"exists": false}, and a
// pattern object nested under an event array is satisfied by one element as a
// whole.
//
// Where the documentation is silent this package follows AWS's open-source
// matcher (event-ruler): null is a present value for {"exists": true}; an
// anything-but of strings matches any value that is not one of them (numbers
// included) while an anything-but of numbers matches only numbers; numeric
// comparison covers -5e9..5e9, and numbers outside it match only by their
// exact text.
//
// The package is larger than most (about 1,400 lines) because it is one
// language: the parser, the matcher and the contract check share the parsed
// form and its error paths, and splitting them would export that form only
// to each other. Reading patterns out of templates is package cfnrules.
package pattern

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Pattern is a parsed, valid event pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	root *objNode
}

// objNode is one object level of a pattern. Entries keep document order.
type objNode struct {
	entries []*entry
	errs    Errors // problems with the object itself (empty, duplicate keys)
}

// entry is one key of a pattern object: a leaf match list, a nested object,
// or an "$or" list of alternative objects at the same level.
type entry struct {
	name string
	path string // event path, "$or" left out
	leaf *leafNode
	obj  *objNode
	or   []*objNode
	errs Errors // problems with this key's value
}

// leafNode is a field's list of alternatives. Only valid matchers are kept;
// invalid ones are reported in the owning entry's errs.
type leafNode struct {
	matchers []*matcher
}

type opKind int

const (
	opExact opKind = iota
	opPrefix
	opSuffix
	opEqualsIgnoreCase
	opWildcard
	opNumeric
	opExists
	opCIDR
	opAnythingBut
)

// matcher is one alternative in a leaf array.
type matcher struct {
	op         opKind
	value      any    // opExact: string, json.Number, bool or nil
	str        string // prefix, suffix, equals-ignore-case, wildcard text
	ignoreCase bool   // prefix/suffix given as {"equals-ignore-case": ...}
	wild       []string
	numeric    []numCond
	exists     bool
	cidr       netip.Prefix
	// anything-but: the value matches when it is a leaf of the right kind
	// and none of excluded matches it. numericBut restricts it to numbers,
	// as EventBridge does for a list of numbers.
	excluded   []*matcher
	numericBut bool
}

type numCond struct {
	op  string
	val float64
}

// numericLimit is EventBridge's documented range for numeric matching.
const numericLimit = 5e9

// operators lists the match expressions EventBridge accepts, for "did you
// mean" suggestions. A function, not a var, so no caller can change it.
func operators() []string {
	return []string{"anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix", "suffix", "wildcard"}
}

// Parse parses and validates an event pattern. On any problem it returns a nil
// Pattern and an Errors value listing every problem found, each tied to its
// field path.
func Parse(data []byte) (*Pattern, error) {
	root, errs := parseDocument(data)
	if len(errs) > 0 {
		return nil, errs
	}
	return &Pattern{root: root}, nil
}

// parseDocument builds as much of the pattern tree as it can and returns all
// syntax problems. The tree is returned even when there are problems so the
// contract check can still look at field names next to broken values.
func parseDocument(data []byte) (*objNode, Errors) {
	v, err := decodeOrdered(data)
	if err != nil {
		return nil, Errors{{Msg: fmt.Sprintf("invalid JSON: %v", err)}}
	}
	obj, ok := v.(*object)
	if !ok {
		return nil, Errors{{Msg: fmt.Sprintf("pattern must be a JSON object, got %s", kindOf(v))}}
	}
	root := parseObject(obj, "")
	return root, collectSyntax(root)
}

func collectSyntax(o *objNode) Errors {
	var errs Errors
	var walk func(o *objNode)
	walk = func(o *objNode) {
		errs = append(errs, o.errs...)
		for _, e := range o.entries {
			errs = append(errs, e.errs...)
			if e.obj != nil {
				walk(e.obj)
			}
			for _, alt := range e.or {
				walk(alt)
			}
		}
	}
	walk(o)
	return errs
}

func parseObject(obj *object, path string) *objNode {
	n := &objNode{}
	if len(obj.keys) == 0 {
		n.errs.add(path, "empty object: give at least one field to match")
		return n
	}
	seen := make(map[string]bool, len(obj.keys))
	for i, key := range obj.keys {
		val := obj.vals[i]
		if seen[key] {
			n.errs.add(JoinPath(path, key), "duplicate field: only one of them would take effect")
		}
		seen[key] = true
		if key == "$or" {
			n.entries = append(n.entries, parseOr(val, path))
			continue
		}
		e := &entry{name: key, path: JoinPath(path, key)}
		switch v := val.(type) {
		case *object:
			e.obj = parseObject(v, e.path)
		case []any:
			e.leaf = parseLeaf(v, e)
		default:
			e.errs.add(e.path, fmt.Sprintf("value must be an array, got %s", kindOf(val)))
		}
		n.entries = append(n.entries, e)
	}
	return n
}

func parseOr(val any, path string) *entry {
	e := &entry{name: "$or", path: path}
	where := JoinPath(path, "$or")
	arr, ok := val.([]any)
	if !ok {
		e.errs.add(where, fmt.Sprintf("value must be an array of objects, got %s", kindOf(val)))
		return e
	}
	for i, item := range arr {
		obj, ok := item.(*object)
		if !ok {
			e.errs.add(where, fmt.Sprintf("element %d must be an object, got %s", i, kindOf(item)))
			continue
		}
		e.or = append(e.or, parseObject(obj, path))
	}
	if len(arr) < 2 {
		e.errs.add(where, fmt.Sprintf("needs at least two objects, got %d", len(arr)))
	}
	return e
}

func parseLeaf(arr []any, e *entry) *leafNode {
	l := &leafNode{}
	if len(arr) == 0 {
		e.errs.add(e.path, "empty array: list at least one value to match")
		return l
	}
	for _, item := range arr {
		var m *matcher
		var err string
		switch v := item.(type) {
		case string, json.Number, bool, nil:
			m = &matcher{op: opExact, value: v}
		case *object:
			m, err = parseOperator(v)
		default:
			err = fmt.Sprintf("match values must be strings, numbers, booleans, null or operator objects, got %s", kindOf(item))
		}
		if err != "" {
			e.errs.add(e.path, err)
			continue
		}
		l.matchers = append(l.matchers, m)
	}
	return l
}

// parseOperator parses one {"operator": argument} object from a leaf array.
// It returns a message rather than an error because the caller attaches the
// field path.
func parseOperator(obj *object) (*matcher, string) {
	if len(obj.keys) != 1 {
		if len(obj.keys) == 0 {
			return nil, "empty match expression {}: use an operator such as prefix or exists"
		}
		return nil, fmt.Sprintf("a match expression takes exactly one operator, got %d (%s)", len(obj.keys), strings.Join(obj.keys, ", "))
	}
	op, arg := obj.keys[0], obj.vals[0]
	switch op {
	case "prefix", "suffix":
		kind := opPrefix
		if op == "suffix" {
			kind = opSuffix
		}
		switch a := arg.(type) {
		case string:
			return &matcher{op: kind, str: a}, ""
		case *object:
			if len(a.keys) == 1 && a.keys[0] == "equals-ignore-case" {
				if s, ok := a.vals[0].(string); ok {
					return &matcher{op: kind, str: s, ignoreCase: true}, ""
				}
				return nil, fmt.Sprintf("%s: equals-ignore-case value must be a string, got %s", op, kindOf(a.vals[0]))
			}
		}
		return nil, fmt.Sprintf(`%s value must be a string or {"equals-ignore-case": string}, got %s`, op, kindOf(arg))
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Sprintf("equals-ignore-case value must be a string, got %s", kindOf(arg))
		}
		return &matcher{op: opEqualsIgnoreCase, str: s}, ""
	case "wildcard":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Sprintf("wildcard value must be a string, got %s", kindOf(arg))
		}
		parts, err := parseWildcard(s)
		if err != "" {
			return nil, "wildcard: " + err
		}
		return &matcher{op: opWildcard, str: s, wild: parts}, ""
	case "numeric":
		conds, err := parseNumeric(arg)
		if err != "" {
			return nil, "numeric: " + err
		}
		return &matcher{op: opNumeric, numeric: conds}, ""
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return nil, fmt.Sprintf("exists value must be true or false, got %s", kindOf(arg))
		}
		return &matcher{op: opExists, exists: b}, ""
	case "cidr":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Sprintf("cidr value must be a string, got %s", kindOf(arg))
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Sprintf("cidr: %q is not an IPv4 or IPv6 CIDR block such as 10.0.0.0/24", s)
		}
		return &matcher{op: opCIDR, str: s, cidr: p.Masked()}, ""
	case "anything-but":
		return parseAnythingBut(arg)
	}
	msg := fmt.Sprintf("unknown operator %q", op)
	if s, ok := closest(op, operators()); ok {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += " (known: " + strings.Join(operators(), ", ") + ")"
	}
	return nil, msg
}

func parseAnythingBut(arg any) (*matcher, string) {
	m := &matcher{op: opAnythingBut}
	switch a := arg.(type) {
	case string:
		m.excluded = []*matcher{{op: opExact, value: a}}
	case json.Number:
		if _, err := numberInRange(a); err != "" {
			return nil, "anything-but: " + err
		}
		m.excluded = []*matcher{{op: opExact, value: a}}
		m.numericBut = true
	case []any:
		if len(a) == 0 {
			return nil, "anything-but: empty array: list at least one value"
		}
		var strs, nums int
		for _, item := range a {
			switch v := item.(type) {
			case string:
				strs++
			case json.Number:
				if _, err := numberInRange(v); err != "" {
					return nil, "anything-but: " + err
				}
				nums++
			default:
				return nil, fmt.Sprintf("anything-but list values must be strings or numbers, got %s", kindOf(item))
			}
			m.excluded = append(m.excluded, &matcher{op: opExact, value: item})
		}
		if strs > 0 && nums > 0 {
			return nil, "anything-but list must be all strings or all numbers, not a mix"
		}
		m.numericBut = nums > 0
	case *object:
		if len(a.keys) != 1 {
			return nil, fmt.Sprintf("anything-but object takes exactly one operator, got %d", len(a.keys))
		}
		op, v := a.keys[0], a.vals[0]
		switch op {
		case "prefix", "suffix":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Sprintf("anything-but %s value must be a string, got %s", op, kindOf(v))
			}
			if s == "" {
				return nil, fmt.Sprintf("anything-but %s value must not be empty", op)
			}
			kind := opPrefix
			if op == "suffix" {
				kind = opSuffix
			}
			m.excluded = []*matcher{{op: kind, str: s}}
		case "equals-ignore-case", "wildcard":
			list, ok := stringList(v)
			if !ok {
				return nil, fmt.Sprintf("anything-but %s value must be a string or a non-empty array of strings, got %s", op, kindOf(v))
			}
			for _, s := range list {
				if op == "wildcard" {
					parts, err := parseWildcard(s)
					if err != "" {
						return nil, "anything-but wildcard: " + err
					}
					m.excluded = append(m.excluded, &matcher{op: opWildcard, str: s, wild: parts})
				} else {
					m.excluded = append(m.excluded, &matcher{op: opEqualsIgnoreCase, str: s})
				}
			}
		default:
			msg := fmt.Sprintf("anything-but does not support %q (use prefix, suffix, equals-ignore-case or wildcard)", op)
			if s, ok := closest(op, []string{"prefix", "suffix", "equals-ignore-case", "wildcard"}); ok {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return nil, msg
		}
	default:
		return nil, fmt.Sprintf("anything-but value must be a string, number, array or object, got %s", kindOf(arg))
	}
	return m, ""
}

// stringList accepts a string or a non-empty array of strings.
func stringList(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		if len(t) == 0 {
			return nil, false
		}
		out := make([]string, 0, len(t))
		for _, item := range t {
			s, ok := item.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// parseNumeric accepts EventBridge's forms: ["=", n], ["<" | "<=", n],
// [">" | ">=", n] and [">" | ">=", low, "<" | "<=", high] with low < high.
func parseNumeric(arg any) ([]numCond, string) {
	arr, ok := arg.([]any)
	if !ok {
		return nil, fmt.Sprintf("value must be an array such as [\">\", 0, \"<=\", 5], got %s", kindOf(arg))
	}
	if len(arr) == 0 {
		return nil, "empty array: give an operator and a number, such as [\">\", 0]"
	}
	var conds []numCond
	for i := 0; i < len(arr); i += 2 {
		op, ok := arr[i].(string)
		if !ok || !isNumericOp(op) {
			return nil, fmt.Sprintf("expected an operator (=, <, <=, >, >=) at position %d, got %s", i, show(arr[i]))
		}
		if i+1 >= len(arr) {
			return nil, fmt.Sprintf("operator %q has no number after it", op)
		}
		num, ok := arr[i+1].(json.Number)
		if !ok {
			return nil, fmt.Sprintf("value after %q must be a number, got %s", op, kindOf(arr[i+1]))
		}
		f, err := numberInRange(num)
		if err != "" {
			return nil, err
		}
		conds = append(conds, numCond{op: op, val: f})
	}
	switch {
	case len(conds) == 1:
		return conds, ""
	case len(conds) == 2:
		lo, hi := conds[0], conds[1]
		if (lo.op != ">" && lo.op != ">=") || (hi.op != "<" && hi.op != "<=") {
			return nil, fmt.Sprintf("a range is a lower bound (> or >=) followed by an upper bound (< or <=), got %q then %q", lo.op, hi.op)
		}
		if lo.val >= hi.val {
			return nil, fmt.Sprintf("lower bound %v must be less than upper bound %v", lo.val, hi.val)
		}
		return conds, ""
	}
	return nil, fmt.Sprintf("too many elements (%d): at most a lower and an upper bound", len(arr))
}

func isNumericOp(op string) bool {
	switch op {
	case "=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// numberInRange parses a pattern number and enforces EventBridge's range for
// numeric comparison.
func numberInRange(n json.Number) (float64, string) {
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(f, 0) || f < -numericLimit || f > numericLimit {
		return 0, fmt.Sprintf("%s is outside the supported range -5.0e9 to 5.0e9", n)
	}
	return f, ""
}

// parseWildcard splits a wildcard pattern into literal segments around each
// unescaped "*". `\*` is a literal star and `\\` a literal backslash; any
// other escape and two stars in a row are refused, as EventBridge does.
func parseWildcard(s string) ([]string, string) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*':
			if i+1 < len(s) && s[i+1] == '*' {
				return nil, fmt.Sprintf("consecutive '*' at position %d", i)
			}
			parts = append(parts, cur.String())
			cur.Reset()
		case '\\':
			if i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '\\') {
				cur.WriteByte(s[i+1])
				i++
				continue
			}
			return nil, fmt.Sprintf(`invalid escape at position %d: only \* and \\ are allowed`, i)
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String()), ""
}
