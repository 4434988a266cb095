package event

import (
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
)

// BenchmarkDecodeBuildEncode measures fanout's per-change CPU path: decode a
// Kinesis record (change.Decode), build the event and encode its detail. One
// op is one event; events/s is per core (run with -cpu 1).
func BenchmarkDecodeBuildEncode(b *testing.B) {
	cases := []struct {
		name   string
		change change.Change
	}{
		{"users-update-full", func() change.Change { return *seedChanges()["update"] }()},
		{"wide-insert", wideInsert()},
	}
	for _, bc := range cases {
		data := change.Encode(nil, &change.Record{Changes: []change.Change{bc.change}})
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var detailBytes int
			for b.Loop() {
				rec, err := change.Decode(data)
				if err != nil {
					b.Fatal(err)
				}
				for i := range rec.Changes {
					ev, err := FromChange(&rec.Changes[i], Config{})
					if err != nil {
						b.Fatal(err)
					}
					detailBytes += len(ev.Detail)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkBuildEncode is the event half alone (no change.Decode).
func BenchmarkBuildEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    change.Change
	}{{"users-update-full", *seedChanges()["update"]}, {"wide-insert", wideInsert()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FromChange(&bc.c, Config{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// wideInsert is a 12-column row of common types.
func wideInsert() change.Change {
	cols := []struct{ name, base, text string }{
		{"id", "int8", "9223372036854775807"},
		{"org_id", "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"name", "text", "Ben \"the builder\" Limmer"},
		{"email", "varchar", "ben@example.com"},
		{"balance", "numeric", "12345.6789"},
		{"score", "float8", "0.30000000000000004"},
		{"active", "bool", "t"},
		{"created_at", "timestamptz", "2021-04-28 16:01:22.131231+00"},
		{"birthday", "date", "1990-01-01"},
		{"attrs", "jsonb", `{"plan": "pro", "seats": 12, "flags": ["a", "b"]}`},
		{"avatar", "bytea", `\x89504e470d0a1a0a0000000d49484452`},
		{"tags", "text", "{red,green,\"blue sky\"}"},
	}
	c := change.Change{Database: "app", Schema: "public", Table: "accounts", Op: change.Insert, XID: 1234, CommitLSN: 0x16_B374D848,
		CommitTime: time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC), Identity: change.IdentityDefault}
	for i, col := range cols {
		cc := change.Column{Name: col.name, Type: col.base, Base: col.base, Kind: change.KindBase, Key: i == 0}
		if col.name == "tags" {
			cc.Type, cc.Array = "_text", true
		}
		c.Columns = append(c.Columns, cc)
		c.New = append(c.New, change.Value{Text: col.text})
	}
	return c
}
