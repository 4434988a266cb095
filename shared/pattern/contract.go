package pattern

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ValueType is the JSON shape of a field in an event contract.
type ValueType int

// Field shapes. TypeAny turns checking off below a field whose content is
// not fixed (a column's value can be any JSON).
const (
	TypeAny ValueType = iota
	TypeString
	TypeNumber
	TypeBool
	TypeObject
	TypeStringArray
)

// String names the type with its article, for messages ("the field is a
// number").
func (t ValueType) String() string {
	switch t {
	case TypeString:
		return "a string"
	case TypeNumber:
		return "a number"
	case TypeBool:
		return "a boolean"
	case TypeObject:
		return "an object"
	case TypeStringArray:
		return "an array of strings"
	}
	return "any value"
}

// FieldSpec describes one field of an event contract, so a pattern can be
// checked against what the producer really sends.
type FieldSpec struct {
	Type ValueType
	// Fields are the named fields of an object.
	Fields map[string]*FieldSpec
	// Columns, for an object keyed by column name (newValues, oldValues),
	// is the shape of every column entry. Column names are checked only when
	// CheckOptions.Tables knows the table's columns.
	Columns *FieldSpec
	// Enum, when set, lists every value a string field can hold.
	Enum []string
	// ColumnNames marks string values that are column names (changedValues).
	ColumnNames bool
}

// DatabaseEventContract returns the shape of a DatabaseEvent as EventBridge
// delivers it to a rule. This is the one place the contract is written down
// for pattern checking; extend it here when the event gains a field. It
// returns a new tree on every call so callers may adjust their copy.
func DatabaseEventContract() *FieldSpec {
	str := func() *FieldSpec { return &FieldSpec{Type: TypeString} }
	num := func() *FieldSpec { return &FieldSpec{Type: TypeNumber} }
	column := &FieldSpec{Type: TypeObject, Fields: map[string]*FieldSpec{
		"type":  str(),
		"value": {Type: TypeAny},
		// The markers that stand in for a value that was not sent.
		"unchanged": {Type: TypeBool},
		"omitted":   {Type: TypeBool},
		"redacted":  {Type: TypeBool},
	}}
	values := func() *FieldSpec { return &FieldSpec{Type: TypeObject, Columns: column} }
	return &FieldSpec{Type: TypeObject, Fields: map[string]*FieldSpec{
		"version":     str(),
		"id":          str(),
		"detail-type": str(),
		"source":      str(),
		"account":     str(),
		"time":        str(),
		"region":      str(),
		"resources":   {Type: TypeStringArray},
		"detail": {Type: TypeObject, Fields: map[string]*FieldSpec{
			"txnid":                 num(),
			"timestamp":             str(),
			"schema":                str(),
			"table":                 str(),
			"operation":             {Type: TypeString, Enum: []string{"insert", "update", "delete", "truncate", "read"}},
			"newValues":             values(),
			"oldValues":             values(),
			"changedValues":         {Type: TypeStringArray, ColumnNames: true},
			"lsn":                   str(),
			"seq":                   num(),
			"changedValuesComplete": {Type: TypeBool},
			"cascade":               {Type: TypeBool},
			"restartIdentity":       {Type: TypeBool},
			"backfill":              str(),
		}},
	}}
}

// SchemaChangeDetailType is the detail-type of capture's schema-change
// events (fanout publishes them; see shared/event's README). A pattern that
// selects it exactly is checked against DatabaseSchemaChangeContract.
const SchemaChangeDetailType = "DatabaseSchemaChange"

// DatabaseSchemaChangeContract is the shape of a DatabaseSchemaChange event
// (shared/event's SchemaDetail), for pattern checking.
func DatabaseSchemaChangeContract() *FieldSpec {
	str := func() *FieldSpec { return &FieldSpec{Type: TypeString} }
	num := func() *FieldSpec { return &FieldSpec{Type: TypeNumber} }
	column := func() *FieldSpec {
		return &FieldSpec{Type: TypeObject, Fields: map[string]*FieldSpec{"name": str(), "type": str(), "pgType": str(), "key": {Type: TypeBool}}}
	}
	spec := DatabaseEventContract()
	spec.Fields["detail"] = &FieldSpec{Type: TypeObject, Fields: map[string]*FieldSpec{
		"txnid":      num(),
		"timestamp":  str(),
		"schema":     str(),
		"table":      str(),
		"operation":  {Type: TypeString, Enum: []string{"schema"}},
		"lsn":        str(),
		"seq":        num(),
		"oldColumns": column(),
		"newColumns": column(),
		"added":      {Type: TypeStringArray},
		"dropped":    {Type: TypeStringArray},
		"renamed":    {Type: TypeObject, Fields: map[string]*FieldSpec{"from": str(), "to": str()}},
		"retyped":    {Type: TypeObject, Fields: map[string]*FieldSpec{"name": str(), "from": str(), "to": str()}},
		"keyChanged": {Type: TypeBool},
	}}
	spec.Fields["detail-type"].Enum = []string{SchemaChangeDetailType}
	return spec
}

// CheckOptions narrows the contract to one deployment.
type CheckOptions struct {
	// DetailType, when set, is the only detail-type the rule can receive.
	DetailType string
	// Tables maps "schema.table" or "table" to the table's column names.
	// When set, detail.table (and detail.schema, if every key is qualified)
	// values must name a known table, and column names under newValues,
	// oldValues and changedValues must exist in the tables the pattern
	// selects (all known tables when it selects none by exact value). A table
	// with no columns listed turns column checking off.
	Tables map[string][]string
	// Withheld, when set, says what the column policy does to a column:
	// "exclude" (it is never in events) or "redact" (it never has a value);
	// anything else leaves it alone. A pattern on such a column of every
	// table it selects (by exact detail.table, and detail.schema or else
	// "public") can never match, and is reported.
	Withheld func(schema, table, column string) string
}

// CheckDatabaseEvent checks a parsed pattern against the DatabaseEvent
// contract: unknown field paths, values that can never match their field's
// type, operations walbridge never sends, and (with opts) the wrong
// detail-type, unknown tables and unknown columns. It returns nil when the
// pattern fits.
func CheckDatabaseEvent(p *Pattern, opts CheckOptions) Errors {
	return newChecker(p.root, opts, false).run(p.root)
}

// CheckJSON reports every syntax and contract problem of a pattern document
// at once, in document order. Unlike Parse followed by CheckDatabaseEvent it
// still checks field names next to values that do not parse, so a file with a
// misspelt field and a bare string is fixed in one pass. It returns nil when
// the pattern is valid and fits the contract.
func CheckJSON(data []byte, opts CheckOptions) Errors {
	root, errs := parseDocument(data)
	if root == nil {
		return errs
	}
	return newChecker(root, opts, true).run(root)
}

type checker struct {
	withheld   func(schema, table, column string) string
	selected   [][2]string // schema, table pairs the pattern selects exactly
	spec       *FieldSpec
	syntax     bool            // also report parse problems stored in the tree
	columns    map[string]bool // known columns of the selected tables; nil: unchecked
	columnDesc string          // which tables the columns belong to, for messages
	errs       Errors
}

func newChecker(root *objNode, opts CheckOptions, syntax bool) *checker {
	if dts := exactStrings(root, "detail-type"); len(dts) == 1 && dts[SchemaChangeDetailType] {
		// A rule on schema changes: their own fields, whatever DetailType
		// row events have; tables and the column policy are the row
		// events' business.
		return &checker{spec: DatabaseSchemaChangeContract(), syntax: syntax}
	}
	c := &checker{spec: DatabaseEventContract(), syntax: syntax}
	if opts.DetailType != "" {
		c.spec.Fields["detail-type"].Enum = []string{opts.DetailType}
	}
	if len(opts.Tables) > 0 {
		c.applyTables(root, opts.Tables)
	}
	if opts.Withheld != nil {
		c.withheld = opts.Withheld
		schemas := sortedKeys(exactStrings(root, "detail.schema"))
		if len(schemas) == 0 {
			schemas = []string{"public"}
		}
		for _, t := range sortedKeys(exactStrings(root, "detail.table")) {
			for _, s := range schemas {
				c.selected = append(c.selected, [2]string{s, t})
			}
		}
	}
	return c
}

// policyAction is what the column policy does to column in every table the
// pattern selects ("" when it differs between them, or none are selected).
func (c *checker) policyAction(column string) string {
	if c.withheld == nil || len(c.selected) == 0 {
		return ""
	}
	action := c.withheld(c.selected[0][0], c.selected[0][1], column)
	for _, st := range c.selected[1:] {
		if c.withheld(st[0], st[1], column) != action {
			return ""
		}
	}
	return action
}

// applyTables turns the known tables into enums for detail.table and
// detail.schema and picks the column set for the tables this pattern selects.
func (c *checker) applyTables(root *objNode, tables map[string][]string) {
	detail := c.spec.Fields["detail"]
	tableSet, schemaSet := map[string]bool{}, map[string]bool{}
	allQualified := true
	for key := range tables {
		schema, table, ok := strings.Cut(key, ".")
		if !ok {
			schema, table, allQualified = "", key, false
		}
		tableSet[table] = true
		schemaSet[schema] = true
	}
	detail.Fields["table"].Enum = sortedKeys(tableSet)
	if allQualified {
		detail.Fields["schema"].Enum = sortedKeys(schemaSet)
	}

	wantTables := exactStrings(root, "detail.table")
	wantSchemas := exactStrings(root, "detail.schema")
	cols := map[string]bool{}
	var names []string
	for key, list := range tables {
		schema, table, ok := strings.Cut(key, ".")
		if !ok {
			schema, table = "", key
		}
		if len(wantTables) > 0 && !wantTables[table] {
			continue
		}
		if ok && len(wantSchemas) > 0 && !wantSchemas[schema] {
			continue
		}
		if len(list) == 0 {
			return // a selected table with unknown columns: do not guess
		}
		names = append(names, key)
		for _, col := range list {
			cols[col] = true
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	c.columns, c.columnDesc = cols, strings.Join(names, ", ")
}

// exactStrings collects the exact string values given for one event path
// anywhere in the pattern, $or branches included.
func exactStrings(root *objNode, path string) map[string]bool {
	out := map[string]bool{}
	var walk func(o *objNode)
	walk = func(o *objNode) {
		for _, e := range o.entries {
			switch {
			case e.or != nil:
				for _, alt := range e.or {
					walk(alt)
				}
			case e.obj != nil:
				walk(e.obj)
			case e.leaf != nil && e.path == path:
				for _, m := range e.leaf.matchers {
					if s, ok := m.value.(string); ok && m.op == opExact {
						out[s] = true
					}
				}
			}
		}
	}
	walk(root)
	return out
}

func (c *checker) run(root *objNode) Errors {
	c.object(root, c.spec, "")
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// object checks one pattern object against the spec of the event object at
// the same path. spec is nil below a field the contract does not know, where
// only syntax problems are reported.
func (c *checker) object(o *objNode, spec *FieldSpec, path string) {
	if c.syntax {
		c.errs = append(c.errs, o.errs...)
	}
	for _, e := range o.entries {
		if e.name == "$or" && e.leaf == nil && e.obj == nil {
			if c.syntax {
				c.errs = append(c.errs, e.errs...)
			}
			for _, alt := range e.or {
				c.object(alt, spec, path)
			}
			continue
		}
		child := c.child(spec, e)
		if c.syntax {
			c.errs = append(c.errs, e.errs...)
		}
		switch {
		case e.obj != nil:
			if child != nil && child.Type != TypeObject && child.Type != TypeAny {
				c.errs.add(e.path, fmt.Sprintf("is %s, not an object: match it with an array of values", child.Type))
				child = nil
			}
			c.object(e.obj, child, e.path)
		case e.leaf != nil && child != nil:
			c.leaf(e, child)
		}
	}
}

// child finds the spec for a pattern key, reporting unknown fields and
// columns.
func (c *checker) child(spec *FieldSpec, e *entry) *FieldSpec {
	switch {
	case spec == nil:
		return nil
	case spec.Type == TypeAny:
		return spec
	case spec.Fields != nil:
		if f, ok := spec.Fields[e.name]; ok {
			return f
		}
		names := sortedKeys(spec.Fields)
		parent := strings.TrimSuffix(e.path, e.name)
		if s, ok := closest(e.name, names); ok {
			c.errs.add(e.path, fmt.Sprintf("unknown field; did you mean %s%s?", parent, s))
		} else {
			c.errs.add(e.path, "unknown field (known: "+strings.Join(names, ", ")+")")
		}
		return nil
	case spec.Columns != nil:
		switch c.policyAction(e.name) {
		case "exclude":
			c.errs.add(e.path, "never matches: the column policy excludes this column, so events never carry it")
		case "redact":
			if e.obj != nil && e.obj.has("value") {
				c.errs.add(e.path+".value", `never matches: the column policy redacts this column, so its value is never sent (match {"redacted": [true]} instead)`)
			}
		}
		if c.columns != nil && !c.columns[e.name] {
			parent := strings.TrimSuffix(e.path, e.name)
			if s, ok := closest(e.name, sortedKeys(c.columns)); ok {
				c.errs.add(e.path, fmt.Sprintf("unknown column of %s; did you mean %s%s?", c.columnDesc, parent, s))
			} else {
				c.errs.add(e.path, fmt.Sprintf("unknown column of %s", c.columnDesc))
			}
		}
		return spec.Columns
	}
	return nil
}

// leaf checks each value or operator in a leaf array against the field.
func (c *checker) leaf(e *entry, spec *FieldSpec) {
	switch spec.Type {
	case TypeAny:
		return
	case TypeObject:
		msg := `is an object, not a value: EventBridge matches leaf values only, so values here never match and {"exists": false} always does; match a field inside it`
		if len(spec.Fields) > 0 {
			msg += " (" + strings.Join(sortedKeys(spec.Fields), ", ") + ")"
		}
		c.errs.add(e.path, msg)
		return
	}
	want := spec.Type
	if want == TypeStringArray {
		want = TypeString // a pattern matches the elements of an event array
	}
	for _, m := range e.leaf.matchers {
		c.matcher(e.path, m, spec, want)
	}
}

func (c *checker) matcher(path string, m *matcher, spec *FieldSpec, want ValueType) {
	switch m.op {
	case opExists:
		return
	case opExact:
		got := typeOfValue(m.value)
		if got == TypeAny { // null: the contract does not say which fields may be null
			return
		}
		if got != want {
			c.errs.add(path, fmt.Sprintf("value %s never matches: the field is %s", show(m.value), spec.Type))
			return
		}
		if s, ok := m.value.(string); ok {
			c.knownString(path, fmt.Sprintf("value %q", s), s, spec)
		}
	case opNumeric:
		if want != TypeNumber {
			c.errs.add(path, fmt.Sprintf("numeric matching never matches: the field is %s", spec.Type))
		}
	case opPrefix, opSuffix, opEqualsIgnoreCase, opWildcard, opCIDR:
		if want != TypeString {
			c.errs.add(path, fmt.Sprintf("%s never matches: the field is %s", describe(m), spec.Type))
			return
		}
		if len(spec.Enum) > 0 && !matchesAny(m, spec.Enum) {
			msg := fmt.Sprintf("%s never matches: expected one of %s", describe(m), listOf(spec.Enum))
			if m.op == opEqualsIgnoreCase {
				if s, ok := closest(m.str, spec.Enum); ok {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
			}
			c.errs.add(path, msg)
		}
	case opAnythingBut:
		switch {
		case m.numericBut && want != TypeNumber:
			c.errs.add(path, fmt.Sprintf("anything-but with numbers never matches: the field is %s", spec.Type))
		case !m.numericBut && want == TypeNumber:
			c.errs.add(path, "anything-but with strings matches every value: the field is a number")
		case want == TypeString:
			for _, ex := range m.excluded {
				if s, ok := ex.value.(string); ok && ex.op == opExact {
					c.knownString(path, fmt.Sprintf("anything-but value %q", s), s, spec)
				}
			}
		}
	}
}

// knownString checks a string value against an enum or the known columns.
func (c *checker) knownString(path, what, s string, spec *FieldSpec) {
	switch {
	case len(spec.Enum) > 0:
		for _, v := range spec.Enum {
			if v == s {
				return
			}
		}
		msg := fmt.Sprintf("%s never matches: expected one of %s", what, listOf(spec.Enum))
		if sug, ok := closest(s, spec.Enum); ok {
			msg += fmt.Sprintf("; did you mean %q?", sug)
		}
		c.errs.add(path, msg)
	case spec.ColumnNames && c.policyAction(s) == "exclude":
		c.errs.add(path, fmt.Sprintf("%s never matches: the column policy excludes that column, so events never name it", what))
	case spec.ColumnNames && c.columns != nil && !c.columns[s]:
		msg := fmt.Sprintf("%s is not a column of %s", what, c.columnDesc)
		if sug, ok := closest(s, sortedKeys(c.columns)); ok {
			msg += fmt.Sprintf("; did you mean %q?", sug)
		}
		c.errs.add(path, msg)
	}
}

func matchesAny(m *matcher, values []string) bool {
	for _, v := range values {
		if m.matchValue(v) {
			return true
		}
	}
	return false
}

func typeOfValue(v any) ValueType {
	switch v.(type) {
	case string:
		return TypeString
	case json.Number:
		return TypeNumber
	case bool:
		return TypeBool
	}
	return TypeAny
}

// describe renders a string operator for messages, close to how it was written.
func describe(m *matcher) string {
	names := map[opKind]string{opPrefix: "prefix", opSuffix: "suffix", opEqualsIgnoreCase: "equals-ignore-case", opWildcard: "wildcard", opCIDR: "cidr"}
	if m.ignoreCase {
		return fmt.Sprintf("%s (ignoring case) %q", names[m.op], m.str)
	}
	return fmt.Sprintf("%s %q", names[m.op], m.str)
}

// listOf renders allowed values, shortened when there are many (tables).
func listOf(values []string) string {
	const max = 10
	if len(values) > max {
		return strings.Join(values[:max], ", ") + fmt.Sprintf(", ... (%d in all)", len(values))
	}
	return strings.Join(values, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// has reports whether the object has a key name.
func (o *objNode) has(name string) bool {
	for _, e := range o.entries {
		if e.name == name {
			return true
		}
	}
	return false
}
