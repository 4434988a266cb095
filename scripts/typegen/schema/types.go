package schema

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
)

// setEventTypes sets each column's EventType by asking package event: it
// renders an insert of all NULLs and reads back the "type" of every value.
// The type mapping lives there alone (shared/event/README.md), so a new
// family there reaches the generated types without a second table here.
func setEventTypes(t *Table) error {
	if len(t.Columns) == 0 {
		return nil
	}
	c := &change.Change{Schema: t.Schema, Table: t.Name, Op: change.Insert, Identity: change.IdentityDefault}
	for _, col := range t.Columns {
		c.Columns = append(c.Columns, col.ChangeColumn())
		c.New = append(c.New, change.Value{State: change.Null})
	}
	ev, err := event.FromChange(c, event.Config{})
	if err != nil {
		return fmt.Errorf("%s: event types: %w", t.QualifiedName(), err)
	}
	var detail struct {
		NewValues map[string]struct {
			Type string `json:"type"`
		} `json:"newValues"`
	}
	if err := json.Unmarshal(ev.Detail, &detail); err != nil {
		return fmt.Errorf("%s: event types: %w", t.QualifiedName(), err)
	}
	for i := range t.Columns {
		v, ok := detail.NewValues[t.Columns[i].Name]
		if !ok || v.Type == "" {
			return fmt.Errorf("%s: event has no type for column %s", t.QualifiedName(), t.Columns[i].Name)
		}
		t.Columns[i].EventType = v.Type
	}
	return nil
}

// shape is how a value of one event type looks in JSON, which is all the
// generators need to know about it.
type shape int

const (
	shapeString      shape = iota // any string (the text form)
	shapeInteger                  // JSON integer
	shapeNumeric                  // decimal digits as a string, or NaN/±Infinity
	shapeFloat                    // JSON number, or "NaN"/"Infinity"/"-Infinity"
	shapeBoolean                  // true/false
	shapeJSON                     // any JSON document
	shapeBytes                    // base64 string
	shapeBits                     // string of 0 and 1
	shapeDate                     // ISO 8601 date or ±infinity
	shapeTime                     // HH:MM:SS.ffffff
	shapeTimeTZ                   // HH:MM:SS.ffffff±HH:MM[:SS]
	shapeTimestamp                // date T time, or ±infinity
	shapeTimestampTZ              // date T timetz, or ±infinity
	shapeEnum                     // one of the labels
)

// shapes maps the event types whose values are not just a string (see the
// type mapping in shared/event/README.md). Every other type, including the
// PostgreSQL type names of types the mapping does not know, is a string.
var shapes = map[string]shape{
	"integer":     shapeInteger,
	"numeric":     shapeNumeric,
	"float":       shapeFloat,
	"boolean":     shapeBoolean,
	"json":        shapeJSON,
	"bytes":       shapeBytes,
	"bits":        shapeBits,
	"date":        shapeDate,
	"time":        shapeTime,
	"timetz":      shapeTimeTZ,
	"timestamp":   shapeTimestamp,
	"timestamptz": shapeTimestampTZ,
	"enum":        shapeEnum,
}

// elementShape is the shape of a column's value, or of its array elements.
func (c Column) elementShape() shape {
	return shapes[strings.TrimSuffix(c.EventType, "[]")]
}
