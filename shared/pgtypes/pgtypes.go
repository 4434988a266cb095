// Package pgtypes resolves PostgreSQL type OIDs through pg_type: domains to
// their base type, arrays to their element type, down to the type that
// decides how a value is rendered. Capture renders events from this
// resolution and the schema generator describes those events from it, so
// both use this one implementation and cannot drift apart.
package pgtypes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
)

// Querier runs a query; *pgx.Conn and *pgxpool.Pool are Queriers. Resolve
// needs nothing else, so callers can hand it whatever connection they
// already hold (and serialise access to it themselves).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Type is a declared type after domains and array wrappers.
type Type struct {
	// Name is the declared type's pg_type.typname ("_int4", "posint").
	Name string
	// Base is the type that decides the rendering: domains are replaced by
	// their base type and arrays by their element type, repeatedly. Kind is
	// Base's category.
	Base string
	Kind change.Kind
	// Array is whether the declared type holds arrays of Base: it is an
	// array, a domain over one, or an array of a domain.
	Array bool
	// Dims is the number of array dimensions a domain over an array declares
	// (pg_type.typndims), or 0 when no domain declares any: a plain array
	// type does not know its dimensions, only a column's pg_attribute.attndims
	// does.
	Dims int
	// NotNull is true when a domain on the way to Base is NOT NULL, outside
	// any array: a NOT NULL domain of the elements does not make the array
	// NOT NULL.
	NotNull bool
	// Labels are Base's labels in sort order when it is an enum with labels.
	Labels []string
}

// maxDepth bounds the domain/array chain of one type, so that a catalog
// that loops (it should not) fails instead of hanging.
const maxDepth = 32

// typeQuery reads one pg_type row per OID, with the labels of enums, so
// that each level of the walk costs one round trip and enums none extra.
const typeQuery = `SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text, t.typbasetype, t.typelem,
		t.typnotnull, t.typndims,
		CASE WHEN t.typtype = 'e' THEN ARRAY(
			SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
		END
	FROM pg_type t WHERE t.oid = ANY($1)`

// row is one pg_type row.
type row struct {
	oid                     uint32
	name, typtype, category string
	base, elem              uint32
	notNull                 bool
	ndims                   int
	labels                  []string
}

// isArray tells a true array type: typelem alone is not enough (name, point
// and int2vector have one too); array types are category 'A' named "_elem".
func (r row) isArray() bool {
	return r.category == "A" && r.elem != 0 && strings.HasPrefix(r.name, "_")
}

// next is the type r stands for, if any: a domain's base or an array's
// element.
func (r row) next() (uint32, bool) {
	switch {
	case r.typtype == "d":
		return r.base, true
	case r.isArray():
		return r.elem, true
	default:
		return 0, false
	}
}

// Resolve describes each of oids; the result has an entry for every OID,
// or Resolve fails. It reads pg_type level by level, following domain bases
// and array elements until every type on the way is known.
func Resolve(ctx context.Context, q Querier, oids []uint32) (map[uint32]Type, error) {
	rows := map[uint32]row{}
	for want := slices.Clone(oids); len(want) > 0; {
		got, err := readTypes(ctx, q, want)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			rows[r.oid] = r
		}
		want = nil
		for _, r := range got {
			if n, ok := r.next(); ok && n != 0 && !slices.Contains(want, n) {
				if _, known := rows[n]; !known {
					want = append(want, n)
				}
			}
		}
	}
	out := make(map[uint32]Type, len(oids))
	for _, oid := range oids {
		t, err := resolve(rows, oid)
		if err != nil {
			return nil, err
		}
		out[oid] = t
	}
	return out, nil
}

func readTypes(ctx context.Context, q Querier, oids []uint32) ([]row, error) {
	res, err := q.Query(ctx, typeQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("read pg_type: %w", err)
	}
	got, err := pgx.CollectRows(res, func(cr pgx.CollectableRow) (row, error) {
		var r row
		var ndims int32
		err := cr.Scan(&r.oid, &r.name, &r.typtype, &r.category, &r.base, &r.elem, &r.notNull, &ndims, &r.labels)
		r.ndims = int(ndims)
		if len(r.labels) == 0 { // an enum without labels, like any other type, has none
			r.labels = nil
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read pg_type: %w", err)
	}
	return got, nil
}

// resolve walks from oid down to its rendering type in rows.
func resolve(rows map[uint32]row, oid uint32) (Type, error) {
	r, ok := rows[oid]
	if !ok {
		return Type{}, fmt.Errorf("type %d is not in pg_type", oid)
	}
	t := Type{Name: r.name}
	for depth := 0; ; depth++ {
		if depth > maxDepth {
			return Type{}, fmt.Errorf("type %s: domain/array nesting too deep", t.Name)
		}
		n, wraps := r.next()
		if !wraps {
			t.Base, t.Kind, t.Labels = r.name, change.KindOf(r.typtype), r.labels
			return t, nil
		}
		switch {
		case r.typtype != "d":
			t.Array = true
		case !t.Array: // a domain of the elements says nothing of the array
			t.NotNull = t.NotNull || r.notNull
			t.Dims = max(t.Dims, r.ndims)
		}
		if r, ok = rows[n]; !ok {
			return Type{}, fmt.Errorf("type %s: base or element type missing from pg_type", t.Name)
		}
	}
}
