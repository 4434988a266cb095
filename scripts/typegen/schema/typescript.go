package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// tsPrelude is the part of events.ts that does not depend on the tables.
const tsPrelude = `// DatabaseEvent types, one Detail interface per table: newValues and
// oldValues typed per column (see shared/event/README.md for the mapping).

/** Any JSON document: the value of a json or jsonb column. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A float4 or float8 value: a number, or NaN and the infinities as strings. */
export type Float = number | "NaN" | "Infinity" | "-Infinity";

/**
 * One column's value object. Check for "value" before reading it: a value
 * can also be left out (unchanged TOAST, omitted for size, redacted by the
 * column policy), arrive as its PostgreSQL text form (valueEncoding "text"),
 * or be in S3 (s3: the claim check; the object holds the text form).
 * An array whose lower bounds are not all 1 gives them in lowerBounds.
 */
export type Value<T extends string, V> =
  | { type: T; value: V; valueEncoding?: undefined; lowerBounds?: number[] }
  | { type: T; value: string; valueEncoding: "text" }
  | { type: T; unchanged: true }
  | { type: T; omitted: true; bytes: number }
  | { type: T; redacted: true }
  | { type: T; s3: { bucket: string; key: string }; bytes: number; sha256: string; valueEncoding?: "text" };

/**
 * The detail of a DatabaseEvent. newValues: insert, update and read (every
 * column). oldValues: update and delete, every column under REPLICA IDENTITY
 * FULL, else the key columns, or absent. changedValues: insert, update,
 * delete and read. A read is a row as a backfill found it; backfill names
 * the backfill. lsn and seq identify a change: delivery is at least once.
 */
export interface DetailOf<S extends string, T extends string, Values, Column extends string> {
  txnid: number;
  timestamp: string;
  schema: S;
  table: T;
  operation: "insert" | "update" | "delete" | "truncate" | "read";
  newValues?: Values;
  oldValues?: Partial<Values>;
  changedValues?: Column[];
  lsn: string;
  seq: number;
  changedValuesComplete?: boolean;
  cascade?: true;
  restartIdentity?: true;
  backfill?: string;
}

/** A DatabaseEvent as EventBridge delivers it to a target. */
export interface DatabaseEvent<Detail> {
  version?: string;
  id?: string;
  "detail-type": string;
  source: string;
  account?: string;
  time?: string;
  region?: string;
  resources?: string[];
  detail: Detail;
}
`

// TypeScript returns events.ts for the tables: for each table an interface
// of its columns' value objects and a Detail interface, and Tables, mapping
// "schema.table" to its Detail. Integers are numbers: an int8 beyond 2^53
// loses precision in JSON.parse, as in any JavaScript consumer.
func TypeScript(tables []Table) []byte {
	var b bytes.Buffer
	b.WriteString("// " + Generated + "\n\n")
	b.WriteString(tsPrelude)
	names := uniqueNames{"JsonValue": true, "Float": true, "Value": true, "DetailOf": true, "DatabaseEvent": true, "Tables": true}
	type entry struct{ key, detail string }
	var index []entry
	for _, t := range tables {
		base := names.add(pascal(false, t.Schema, t.Name))
		values, detail := base+"Values", base+"Detail"
		names[values], names[detail] = true, true
		fmt.Fprintf(&b, "\n/** The columns of %s as value objects. */\n", tsComment(t.QualifiedName()))
		fmt.Fprintf(&b, "export interface %s {\n", values)
		for _, c := range t.Columns {
			note := c.Declared
			if c.NotNull {
				note += " NOT NULL"
			}
			fmt.Fprintf(&b, "  /** %s */\n", tsComment(note))
			fmt.Fprintf(&b, "  %s: Value<%s, %s>;\n", tsKey(c.Name), tsString(c.EventType), tsValueType(c))
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "\n/** The detail of a DatabaseEvent of %s. */\n", tsComment(t.QualifiedName()))
		fmt.Fprintf(&b, "export interface %s extends DetailOf<%s, %s, %s, keyof %s & string> {}\n",
			detail, tsString(t.Schema), tsString(t.Name), values, values)
		index = append(index, entry{t.QualifiedName(), detail})
	}
	b.WriteString("\n/** Each table's Detail, by \"schema.table\". */\nexport interface Tables {\n")
	for _, e := range index {
		fmt.Fprintf(&b, "  %s: %s;\n", tsString(e.key), e.detail)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// tsValueType is the TypeScript type of a column's "value".
func tsValueType(c Column) string {
	elem := tsShape(c.elementShape(), c.Labels)
	t := elem
	if c.Array {
		t = "(" + elem + " | null)" + strings.Repeat("[]", c.Dims)
	}
	if !c.NotNull && (c.Array || c.elementShape() != shapeJSON) { // JsonValue has null already
		t += " | null"
	}
	return t
}

func tsShape(s shape, labels []string) string {
	switch s {
	case shapeInteger:
		return "number"
	case shapeFloat:
		return "Float"
	case shapeBoolean:
		return "boolean"
	case shapeJSON:
		return "JsonValue"
	case shapeEnum:
		if len(labels) == 0 {
			return "never"
		}
		quoted := make([]string, len(labels))
		for i, l := range labels {
			quoted[i] = tsString(l)
		}
		return strings.Join(quoted, " | ")
	}
	return "string"
}

func tsKey(name string) string {
	if tsIdentifier(name) {
		return name
	}
	return tsString(name)
}

// tsString quotes s as a string literal; JSON's quoting is valid TypeScript.
func tsString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// tsComment keeps s from closing the comment it is written in.
func tsComment(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "*/", "* /"), "\n", " ")
}
