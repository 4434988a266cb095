package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/walbridge/walbridge/shared/change"
)

// DefaultSchemaDetailType is the detail-type of schema changes when
// Config.SchemaDetailType is empty.
const DefaultSchemaDetailType = "DatabaseSchemaChange"

// SchemaColumn is one column of a shape in a DatabaseSchemaChange event:
// its name, the type its values have in DatabaseEvents ("integer",
// "string", ...), PostgreSQL's type name, and whether it is in the key.
type SchemaColumn struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	PGType string `json:"pgType"`
	Key    bool   `json:"key,omitempty"`
}

// SchemaDetail is a DatabaseSchemaChange event's detail.
type SchemaDetail struct {
	TxnID     uint32 `json:"txnid"`
	Timestamp string `json:"timestamp"`
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	Operation string `json:"operation"` // "schema"
	// LSN is where the new shape applies from: the position of the first
	// change decoded with it. With Seq (always 0) it identifies the event
	// across repeats; no row event has it, since row events carry their
	// commit's LSN.
	LSN        string         `json:"lsn"`
	Seq        uint32         `json:"seq"`
	OldColumns []SchemaColumn `json:"oldColumns"`
	NewColumns []SchemaColumn `json:"newColumns"`
	// What changed, by column name. A rename is a column whose name alone
	// changed in place (same position, type and key): a Relation message
	// carries no column identity, so it is inferred.
	Added   []string `json:"added"`
	Dropped []string `json:"dropped"`
	Renamed []Rename `json:"renamed"`
	Retyped []Retype `json:"retyped"`
	// KeyChanged is true when the key columns differ.
	KeyChanged bool `json:"keyChanged"`
}

// Rename is a column whose name changed.
type Rename struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Retype is a column whose type changed.
type Retype struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

func schemaColumns(cols []change.Column) []SchemaColumn {
	out := make([]SchemaColumn, len(cols))
	for i := range cols {
		out[i] = SchemaColumn{Name: cols[i].Name, Type: typeOf(&cols[i]).typeName(), PGType: cols[i].Type, Key: cols[i].Key}
	}
	return out
}

// orEmpty is s, or an empty slice for nil: the detail's lists are [] rather
// than null, so consumers can index them.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Diff works out what changed between two shapes.
func Diff(oldCols, newCols []change.Column) (added, dropped []string, renamed []Rename, retyped []Retype, keyChanged bool) {
	byName := func(cols []change.Column) map[string]*change.Column {
		m := make(map[string]*change.Column, len(cols))
		for i := range cols {
			m[cols[i].Name] = &cols[i]
		}
		return m
	}
	oldBy, newBy := byName(oldCols), byName(newCols)
	renamedFrom, renamedTo := map[string]bool{}, map[string]bool{}
	if len(oldCols) == len(newCols) {
		for i := range oldCols {
			o, n := &oldCols[i], &newCols[i]
			if o.Name != n.Name && oldBy[n.Name] == nil && newBy[o.Name] == nil && o.OID == n.OID && o.Key == n.Key {
				renamed = append(renamed, Rename{From: o.Name, To: n.Name})
				renamedFrom[o.Name], renamedTo[n.Name] = true, true
			}
		}
	}
	for i := range newCols {
		n := &newCols[i]
		o := oldBy[n.Name]
		switch {
		case o == nil && !renamedTo[n.Name]:
			added = append(added, n.Name)
		case o != nil && (o.OID != n.OID || o.Type != n.Type):
			retyped = append(retyped, Retype{Name: n.Name, From: o.Type, To: n.Type})
		}
	}
	for i := range oldCols {
		if newBy[oldCols[i].Name] == nil && !renamedFrom[oldCols[i].Name] {
			dropped = append(dropped, oldCols[i].Name)
		}
	}
	keys := func(cols []change.Column) []string {
		var k []string
		for i := range cols {
			if cols[i].Key {
				k = append(k, cols[i].Name)
			}
		}
		return k
	}
	ok, nk := keys(oldCols), keys(newCols)
	for _, r := range renamed {
		if i := slices.Index(ok, r.From); i >= 0 {
			ok[i] = r.To
		}
	}
	keyChanged = !slices.Equal(ok, nk)
	return added, dropped, renamed, retyped, keyChanged
}

// FromSchemaChange builds the DatabaseSchemaChange event for a schema
// change record: both shapes and what changed between them.
func FromSchemaChange(c *change.Change, cfg Config) (Event, error) {
	if c.Op != change.SchemaChange {
		return Event{}, fmt.Errorf("build schema change event for %q change: not a schema change", c.Op)
	}
	if err := c.Validate(); err != nil {
		return Event{}, fmt.Errorf("build event: %w", err)
	}
	cfg = cfg.withDefaults()
	d := SchemaDetail{
		TxnID:      c.XID,
		Timestamp:  c.CommitTime.UTC().Truncate(time.Microsecond).Format(timestampLayout),
		Schema:     c.Schema,
		Table:      c.Table,
		Operation:  string(change.SchemaChange),
		LSN:        c.LSN.String(),
		OldColumns: schemaColumns(c.OldColumns),
		NewColumns: schemaColumns(c.Columns),
	}
	added, dropped, renamed, retyped, keyChanged := Diff(c.OldColumns, c.Columns)
	d.Added, d.Dropped, d.Renamed, d.Retyped, d.KeyChanged = orEmpty(added), orEmpty(dropped), orEmpty(renamed), orEmpty(retyped), keyChanged
	detail, err := json.Marshal(d)
	if err != nil {
		return Event{}, fmt.Errorf("build schema change event: %w", err)
	}
	return Event{
		Source:     cfg.Source,
		DetailType: cfg.SchemaDetailType,
		Resources:  cfg.resources(c.Database),
		Time:       c.CommitTime,
		Detail:     detail,
		Schema:     c.Schema,
		Table:      c.Table,
		Operation:  c.Op,
		LSN:        c.LSN,
	}, nil
}
