package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Match reports whether the JSON event matches the pattern under EventBridge's
// rules. The error is only for an event that is not a JSON object.
func (p *Pattern) Match(event []byte) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber() // keep numbers exact so 12345678901234567890 still compares as text
	var v any
	if err := dec.Decode(&v); err != nil {
		return false, fmt.Errorf("decode event: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false, errors.New("decode event: unexpected data after the top-level value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false, fmt.Errorf("decode event: event must be a JSON object, got %s", kindOf(v))
	}
	return matchFields(p.root, m), nil
}

// matchObj matches a pattern object against whatever the event holds at that
// path. An event array is satisfied by one element matching the whole object,
// so fields from different elements are never combined. Anything that is not
// an object leaves every field below it absent.
func matchObj(o *objNode, v any) bool {
	switch ev := v.(type) {
	case map[string]any:
		return matchFields(o, ev)
	case []any:
		elems := flatten(ev, nil)
		for _, e := range elems {
			if matchObj(o, e) {
				return true
			}
		}
		if len(elems) == 0 {
			return matchFields(o, nil)
		}
		return false
	}
	return matchFields(o, nil)
}

func matchFields(o *objNode, m map[string]any) bool {
	for _, e := range o.entries {
		switch {
		case e.or != nil:
			matched := false
			for _, alt := range e.or {
				if matchFields(alt, m) {
					matched = true
					break
				}
			}
			if !matched {
				return false
			}
		case e.obj != nil:
			if !matchObj(e.obj, m[e.name]) {
				return false
			}
		case e.leaf != nil:
			var vals []any
			if child, ok := m[e.name]; ok {
				vals = leaves(child, nil)
			}
			if !e.leaf.match(vals) {
				return false
			}
		}
	}
	return true
}

// flatten expands nested arrays into their elements.
func flatten(arr []any, out []any) []any {
	for _, e := range arr {
		if inner, ok := e.([]any); ok {
			out = flatten(inner, out)
			continue
		}
		out = append(out, e)
	}
	return out
}

// leaves returns the leaf values at a path: the value itself, or the scalar
// elements of an array. An object is not a leaf, which is why
// {"exists": false} matches a field that holds an object.
func leaves(v any, out []any) []any {
	switch t := v.(type) {
	case map[string]any:
		return out
	case []any:
		for _, e := range t {
			out = leaves(e, out)
		}
		return out
	}
	return append(out, v)
}

func (l *leafNode) match(vals []any) bool {
	for _, m := range l.matchers {
		if m.op == opExists {
			if m.exists == (len(vals) > 0) {
				return true
			}
			continue
		}
		for _, v := range vals {
			if m.matchValue(v) {
				return true
			}
		}
	}
	return false
}

func (m *matcher) matchValue(v any) bool {
	switch m.op {
	case opExact:
		return equalValue(m.value, v)
	case opPrefix:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if m.ignoreCase {
			return strings.HasPrefix(strings.ToLower(s), strings.ToLower(m.str))
		}
		return strings.HasPrefix(s, m.str)
	case opSuffix:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if m.ignoreCase {
			return strings.HasSuffix(strings.ToLower(s), strings.ToLower(m.str))
		}
		return strings.HasSuffix(s, m.str)
	case opEqualsIgnoreCase:
		s, ok := v.(string)
		return ok && strings.EqualFold(s, m.str)
	case opWildcard:
		s, ok := v.(string)
		return ok && wildcardMatch(m.wild, s)
	case opNumeric:
		f, ok := eventNumber(v)
		if !ok {
			return false
		}
		for _, c := range m.numeric {
			if !c.holds(f) {
				return false
			}
		}
		return true
	case opCIDR:
		s, ok := v.(string)
		if !ok {
			return false
		}
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return false
		}
		if m.cidr.Addr().Is4() {
			addr = addr.Unmap()
		}
		return m.cidr.Contains(addr)
	case opAnythingBut:
		if m.numericBut {
			if _, ok := eventNumber(v); !ok {
				return false
			}
		}
		for _, ex := range m.excluded {
			if ex.matchValue(v) {
				return false
			}
		}
		return true
	}
	return false
}

func (c numCond) holds(f float64) bool {
	switch c.op {
	case "=":
		return f == c.val
	case "<":
		return f < c.val
	case "<=":
		return f <= c.val
	case ">":
		return f > c.val
	case ">=":
		return f >= c.val
	}
	return false
}

// eventNumber returns a JSON number from the event when it is inside the range
// EventBridge can compare numerically.
func eventNumber(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f < -numericLimit || f > numericLimit {
		return 0, false
	}
	return f, true
}

// equalValue is exact matching: same JSON type and value. Numbers compare
// numerically (300 matches 3.0e2) when both are in the comparable range, and
// by their text otherwise, so large identifiers still match themselves.
func equalValue(want, v any) bool {
	switch w := want.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == w
	case json.Number:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		if n == w {
			return true
		}
		a, aok := eventNumber(w)
		b, bok := eventNumber(n)
		return aok && bok && a == b
	case bool:
		b, ok := v.(bool)
		return ok && b == w
	case nil:
		return v == nil
	}
	return false
}

// wildcardMatch matches s against literal parts separated by "*". The first
// part anchors the start, the last the end, and the middle parts are found
// left to right; leftmost placement is always safe for a single-star glob.
func wildcardMatch(parts []string, s string) bool {
	if len(parts) == 1 {
		return s == parts[0]
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
