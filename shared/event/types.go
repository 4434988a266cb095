package event

import (
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/jsontext"
)

// family is one row of the type mapping: the PostgreSQL types (or type
// category) it covers, the "type" it is given in events and how its text form
// becomes a JSON value. README.md documents the same table; a test keeps the
// two in step.
type family struct {
	Type string        // the event's "type"
	PG   []string      // pg_type.typname values, for base types
	Kind change.Kind   // type category, for enum/composite/range/multirange
	enc  valueEncoding // how the text form becomes JSON
}

// valueEncoding selects the renderer for a family's values.
type valueEncoding uint8

const (
	encString      valueEncoding = iota // JSON string holding PostgreSQL's text form
	encInteger                          // JSON number, exact digits
	encNumeric                          // JSON string, exact digits (or NaN/±Infinity)
	encFloat                            // JSON number; NaN and ±Infinity as strings
	encBoolean                          // true/false
	encJSON                             // the document itself, embedded
	encJSONText                         // json (not jsonb): embedded when that keeps its text exactly
	encBytes                            // base64 of the bytes
	encDate                             // YYYY-MM-DD
	encTime                             // HH:MM:SS.ffffff
	encTimeTZ                           // HH:MM:SS.ffffff+HH:MM
	encTimestamp                        // YYYY-MM-DDTHH:MM:SS.ffffff
	encTimestampTZ                      // YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM
)

// families is the type mapping. It is read-only.
var families = []family{
	{Type: "integer", PG: []string{"int2", "int4", "int8", "oid"}, enc: encInteger},
	{Type: "numeric", PG: []string{"numeric"}, enc: encNumeric},
	{Type: "float", PG: []string{"float4", "float8"}, enc: encFloat},
	{Type: "boolean", PG: []string{"bool"}, enc: encBoolean},
	{Type: "string", PG: []string{"text", "varchar", "char", "bpchar", "name", "citext"}},
	{Type: "uuid", PG: []string{"uuid"}},
	{Type: "json", PG: []string{"json", "jsonb"}, enc: encJSON},
	{Type: "bytes", PG: []string{"bytea"}, enc: encBytes},
	{Type: "date", PG: []string{"date"}, enc: encDate},
	{Type: "time", PG: []string{"time"}, enc: encTime},
	{Type: "timetz", PG: []string{"timetz"}, enc: encTimeTZ},
	{Type: "timestamp", PG: []string{"timestamp"}, enc: encTimestamp},
	{Type: "timestamptz", PG: []string{"timestamptz"}, enc: encTimestampTZ},
	{Type: "interval", PG: []string{"interval"}},
	{Type: "money", PG: []string{"money"}},
	{Type: "inet", PG: []string{"inet"}},
	{Type: "cidr", PG: []string{"cidr"}},
	{Type: "macaddr", PG: []string{"macaddr"}},
	{Type: "macaddr8", PG: []string{"macaddr8"}},
	{Type: "bits", PG: []string{"bit", "varbit"}},
	{Type: "point", PG: []string{"point"}},
	{Type: "line", PG: []string{"line"}},
	{Type: "lseg", PG: []string{"lseg"}},
	{Type: "box", PG: []string{"box"}},
	{Type: "path", PG: []string{"path"}},
	{Type: "polygon", PG: []string{"polygon"}},
	{Type: "circle", PG: []string{"circle"}},
	{Type: "tsvector", PG: []string{"tsvector"}},
	{Type: "tsquery", PG: []string{"tsquery"}},
	{Type: "xml", PG: []string{"xml"}},
	{Type: "enum", Kind: change.KindEnum},
	{Type: "composite", Kind: change.KindComposite},
	{Type: "range", Kind: change.KindRange},
	{Type: "multirange", Kind: change.KindMultirange},
}

// familyByName and familyByKind index families; built once, never written.
var familyByName, familyByKind = func() (map[string]*family, map[change.Kind]*family) {
	byName := map[string]*family{}
	byKind := map[change.Kind]*family{}
	for i := range families {
		f := &families[i]
		for _, n := range f.PG {
			byName[n] = f
		}
		if f.Kind != "" {
			byKind[f.Kind] = f
		}
	}
	return byName, byKind
}()

// columnType is how one column is rendered: its family (nil for a type the
// mapping does not know, rendered as a string named after the type), whether
// it is an array, and the array delimiter.
type columnType struct {
	fam   *family
	name  string // Column.Base, used as the type name of unknown types
	array bool
	delim byte
}

func typeOf(col *change.Column) columnType {
	ct := columnType{name: col.Base, array: col.Array, delim: ','}
	switch col.Kind {
	case change.KindEnum, change.KindComposite, change.KindRange, change.KindMultirange:
		ct.fam = familyByKind[col.Kind]
	default:
		ct.fam = familyByName[col.Base]
	}
	if col.Base == "box" {
		// box is the one built-in type whose array delimiter (typdelim) is
		// not a comma: its text form is full of commas.
		ct.delim = ';'
	}
	return ct
}

func (ct columnType) enc() valueEncoding {
	switch {
	case ct.fam == nil:
		return encString
	case ct.fam.enc == encJSON && ct.name == "json":
		// json keeps the text it was given (jsonb normalizes it).
		return encJSONText
	}
	return ct.fam.enc
}

// appendTypeName appends the JSON string for the event's "type": the
// family's name, the PostgreSQL type name for unknown types, with "[]" for
// arrays.
func (ct columnType) appendTypeName(dst []byte) []byte {
	return jsontext.AppendString(dst, ct.typeName())
}

// typeName is the event's "type" of the column (see appendTypeName).
func (ct columnType) typeName() string {
	name := ct.name
	if ct.fam != nil {
		name = ct.fam.Type
	}
	if ct.array {
		return name + "[]"
	}
	return name
}
