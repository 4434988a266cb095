package schema

import (
	"bytes"
	"fmt"
	"go/format"
	"go/token"
	"strconv"
	"strings"
	"unicode"
)

// goPrelude is the part of events.go that does not depend on the tables.
const goPrelude = `
import (
	"encoding/json"
	"fmt"
	"math"
)

// Event is a DatabaseEvent as EventBridge delivers it to a target, with the
// detail of one table.
type Event[D any] struct {
	Version    string   ` + "`json:\"version,omitempty\"`" + `
	ID         string   ` + "`json:\"id,omitempty\"`" + `
	DetailType string   ` + "`json:\"detail-type\"`" + `
	Source     string   ` + "`json:\"source\"`" + `
	Account    string   ` + "`json:\"account,omitempty\"`" + `
	Time       string   ` + "`json:\"time,omitempty\"`" + `
	Region     string   ` + "`json:\"region,omitempty\"`" + `
	Resources  []string ` + "`json:\"resources,omitempty\"`" + `
	Detail     D        ` + "`json:\"detail\"`" + `
}

// DetailHeader holds the detail fields every table's Detail has. LSN and Seq
// identify a change: delivery is at least once, so drop repeats with them.
type DetailHeader struct {
	TxnID     uint32 ` + "`json:\"txnid\"`" + `
	Timestamp string ` + "`json:\"timestamp\"`" + `
	Schema    string ` + "`json:\"schema\"`" + `
	Table     string ` + "`json:\"table\"`" + `
	// Operation is insert, update, delete, truncate or read (a row as a
	// backfill found it).
	Operation string ` + "`json:\"operation\"`" + `
	LSN       string ` + "`json:\"lsn\"`" + `
	Seq       uint32 ` + "`json:\"seq\"`" + `
	// ChangedValuesComplete is set on updates only.
	ChangedValuesComplete *bool ` + "`json:\"changedValuesComplete,omitempty\"`" + `
	// Cascade and RestartIdentity are the options of a truncate.
	Cascade         bool ` + "`json:\"cascade,omitempty\"`" + `
	RestartIdentity bool ` + "`json:\"restartIdentity,omitempty\"`" + `
	// Backfill is set on reads: the id of the backfill that read the row.
	Backfill string ` + "`json:\"backfill,omitempty\"`" + `
}

// Value is one column's value object. Present reports whether Value holds
// the value; otherwise the value was not sent (Unchanged TOAST, Omitted for
// size, with Bytes its size, Redacted by the column policy), arrived as
// its PostgreSQL text form in Text, or is in S3 (S3 set: the claim check;
// claimcheck.Resolve on the detail before decoding gives the value).
// In oldValues a column that was not sent at all has an empty Type.
type Value[T any] struct {
	Type  string
	Value T
	// ValueEncoding is "text" when the value arrived as its PostgreSQL
	// text form, which is then in Text.
	ValueEncoding string
	Text          string
	// LowerBounds is set for an array whose lower bounds are not all 1:
	// each dimension's, outermost first (Value holds the elements).
	LowerBounds []int
	Unchanged   bool
	Omitted     bool
	Bytes       int
	Redacted    bool
	// S3 locates a value the claim check keeps in S3 (Bytes its size,
	// SHA256 its hash); ValueEncoding "text" then says the object holds the
	// value's text form where the type has another.
	S3     *ObjectRef
	SHA256 string
}

// ObjectRef is where the claim check put a value.
type ObjectRef struct {
	Bucket string ` + "`json:\"bucket\"`" + `
	Key    string ` + "`json:\"key\"`" + `
}

// IsZero reports whether the column was not sent at all (a column of a
// key-only oldValues), so that encoding leaves it out (omitzero).
func (v Value[T]) IsZero() bool { return v.Type == "" }

// Present reports whether v.Value holds the column's value.
func (v Value[T]) Present() bool {
	return v.Type != "" && !v.Unchanged && !v.Omitted && !v.Redacted && v.S3 == nil && v.ValueEncoding == ""
}

type valueObject struct {
	Type          string          ` + "`json:\"type\"`" + `
	Value         json.RawMessage ` + "`json:\"value,omitempty\"`" + `
	ValueEncoding string          ` + "`json:\"valueEncoding,omitempty\"`" + `
	LowerBounds   []int           ` + "`json:\"lowerBounds,omitempty\"`" + `
	Unchanged     bool            ` + "`json:\"unchanged,omitempty\"`" + `
	Omitted       bool            ` + "`json:\"omitted,omitempty\"`" + `
	Bytes         *int            ` + "`json:\"bytes,omitempty\"`" + `
	Redacted      bool            ` + "`json:\"redacted,omitempty\"`" + `
	S3            *ObjectRef      ` + "`json:\"s3,omitempty\"`" + `
	SHA256        string          ` + "`json:\"sha256,omitempty\"`" + `
}

// UnmarshalJSON reads a value object of any form.
func (v *Value[T]) UnmarshalJSON(data []byte) error {
	var o valueObject
	if err := json.Unmarshal(data, &o); err != nil {
		return err
	}
	*v = Value[T]{Type: o.Type, LowerBounds: o.LowerBounds, Unchanged: o.Unchanged, Omitted: o.Omitted, Redacted: o.Redacted, S3: o.S3, SHA256: o.SHA256}
	if o.Bytes != nil {
		v.Bytes = *o.Bytes
	}
	switch {
	case o.S3 != nil:
		v.ValueEncoding = o.ValueEncoding
		return nil
	case o.ValueEncoding == "text":
		v.ValueEncoding = o.ValueEncoding
		return json.Unmarshal(o.Value, &v.Text)
	case o.ValueEncoding != "":
		return fmt.Errorf("value of type %s: unknown valueEncoding %q", o.Type, o.ValueEncoding)
	case o.Value != nil:
		return json.Unmarshal(o.Value, &v.Value)
	}
	return nil
}

// MarshalJSON writes the value object back in the form it was read.
func (v Value[T]) MarshalJSON() ([]byte, error) {
	o := valueObject{Type: v.Type, LowerBounds: v.LowerBounds, Unchanged: v.Unchanged, Omitted: v.Omitted, Redacted: v.Redacted}
	var err error
	switch {
	case v.S3 != nil:
		o.S3, o.SHA256, o.Bytes, o.ValueEncoding = v.S3, v.SHA256, &v.Bytes, v.ValueEncoding
	case v.Omitted:
		o.Bytes = &v.Bytes
	case v.Unchanged, v.Redacted:
	case v.ValueEncoding != "":
		o.ValueEncoding = v.ValueEncoding
		o.Value, err = json.Marshal(v.Text)
	default:
		o.Value, err = json.Marshal(v.Value)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(o)
}

// Float is a float4 or float8 value; events carry NaN and the infinities
// as the strings "NaN", "Infinity" and "-Infinity".
type Float float64

// UnmarshalJSON reads a number or one of the three strings.
func (f *Float) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		switch s {
		case "NaN":
			*f = Float(math.NaN())
		case "Infinity":
			*f = Float(math.Inf(1))
		case "-Infinity":
			*f = Float(math.Inf(-1))
		default:
			return fmt.Errorf("float value %q", s)
		}
		return nil
	}
	var n float64
	if err := json.Unmarshal(data, &n); err != nil {
		return err
	}
	*f = Float(n)
	return nil
}

// MarshalJSON writes a number, or a string for NaN and the infinities.
func (f Float) MarshalJSON() ([]byte, error) {
	switch v := float64(f); {
	case math.IsNaN(v):
		return []byte(` + "`\"NaN\"`" + `), nil
	case math.IsInf(v, 1):
		return []byte(` + "`\"Infinity\"`" + `), nil
	case math.IsInf(v, -1):
		return []byte(` + "`\"-Infinity\"`" + `), nil
	}
	return json.Marshal(float64(f))
}
`

// Go returns events.go for the tables, in package pkg: for each table a
// struct of its columns' values and a Detail struct, plus Event, Value and
// Float. Integers take their PostgreSQL width (int2 → int16, oid → uint32),
// nullable columns and array elements are pointers (slices and
// json.RawMessage stay as they are), and dates and times stay strings, since
// infinity and BC years do not fit time.Time.
func Go(tables []Table, pkg string) ([]byte, error) {
	if !token.IsIdentifier(pkg) || pkg == "_" {
		return nil, fmt.Errorf("package name %q is not a Go identifier", pkg)
	}
	var b bytes.Buffer
	b.WriteString("// " + Generated + "\n\n")
	fmt.Fprintf(&b, "// Package %s holds the DatabaseEvent types of a database's tables: one\n// Detail struct per table, newValues and oldValues typed per column.\npackage %s\n", pkg, pkg)
	b.WriteString(goPrelude)
	names := uniqueNames{"Event": true, "DetailHeader": true, "Value": true, "Float": true, "Tables": true}
	for _, t := range tables {
		base := names.add(pascal(true, t.Schema, t.Name))
		values, detail := base+"Values", base+"Detail"
		names[values], names[detail] = true, true
		fmt.Fprintf(&b, "\n// %s holds the columns of %s as value objects.\ntype %s struct {\n", values, goComment(t.QualifiedName()), values)
		fields := uniqueNames{}
		for _, c := range t.Columns {
			note := c.Declared
			if c.NotNull {
				note += " NOT NULL"
			}
			tag := strconv.Quote(c.Name + ",omitzero")
			if !jsonTagKey(c.Name) {
				note += " (encoding/json cannot name this column in a struct tag: not decoded)"
				tag = `"-"`
			}
			fmt.Fprintf(&b, "\t// %s\n\t%s Value[%s] `json:%s`\n", goComment(note), fields.add(pascal(true, c.Name)), goValueType(c), tag)
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "\n// %s is the detail of a DatabaseEvent of %s.\ntype %s struct {\n\tDetailHeader\n", detail, goComment(t.QualifiedName()), detail)
		fmt.Fprintf(&b, "\t// NewValues is set on insert, update and read.\n\tNewValues *%s `json:\"newValues,omitempty\"`\n", values)
		fmt.Fprintf(&b, "\t// OldValues is set on update and delete when PostgreSQL sent an old row:\n\t// every column under REPLICA IDENTITY FULL, else the key columns.\n\tOldValues *%s `json:\"oldValues,omitempty\"`\n", values)
		b.WriteString("\t// ChangedValues names the changed columns (every column on insert, read and delete).\n\tChangedValues []string `json:\"changedValues,omitzero\"`\n}\n")
	}
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format generated Go: %w", err)
	}
	return out, nil
}

// goValueType is the Go type of a column's "value".
func goValueType(c Column) string {
	elem := goShape(c.elementShape(), c.Base)
	if c.Array {
		if elem != "json.RawMessage" && elem != "[]byte" {
			elem = "*" + elem // NULL elements
		}
		return strings.Repeat("[]", c.Dims) + elem
	}
	if !c.NotNull && elem != "json.RawMessage" && elem != "[]byte" {
		return "*" + elem
	}
	return elem
}

func goShape(s shape, base string) string {
	switch s {
	case shapeInteger:
		switch base {
		case "int2":
			return "int16"
		case "int4":
			return "int32"
		case "oid":
			return "uint32"
		}
		return "int64"
	case shapeFloat:
		return "Float"
	case shapeBoolean:
		return "bool"
	case shapeJSON:
		return "json.RawMessage"
	case shapeBytes:
		return "[]byte"
	}
	return "string"
}

// jsonTagKey reports whether encoding/json accepts name as a struct tag's
// key (its isValidTag): letters, digits, spaces and most punctuation, but
// no quotes, backslash or comma.
func jsonTagKey(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", r) {
			return false
		}
	}
	return true
}

func goComment(s string) string { return strings.ReplaceAll(s, "\n", " ") }
