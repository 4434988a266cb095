package event

import (
	"strconv"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/shardmap"
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

// BenchmarkFormats is fanout's per-change path for a burst of 500 changes
// to distinct rows, as version 1 records (one per row) and as one version 2
// record (zstd-compressed), where fanout also works out each change's
// partition key and its hash, to skip other shards' keys. One op is the 500
// events; events/s is per core (run with -cpu 1).
func BenchmarkFormats(b *testing.B) {
	comp := change.NewCompressor(1)
	for _, bc := range []struct {
		name string
		c    change.Change
	}{{"users-update-full", *seedChanges()["update"]}, {"wide-insert", wideInsert()}} {
		burst := make([]change.Change, 500)
		var v1 [][]byte
		for i := range burst {
			c := bc.c
			c.New = append([]change.Value(nil), bc.c.New...)
			c.New[0] = change.Value{Text: strconv.Itoa(1000 + i)}
			c.Seq = uint32(i)
			burst[i] = c
			v1 = append(v1, change.Encode(nil, &change.Record{Changes: burst[i : i+1]}))
		}
		v2 := comp.Compress(nil, change.EncodeV2(nil, &change.Record{Changes: burst}))
		everything := shardmap.Range{End: shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}}
		for _, f := range []struct {
			name    string
			records [][]byte
		}{{"v1", v1}, {"v2", [][]byte{v2}}} {
			b.Run(bc.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				var key []byte
				for b.Loop() {
					events := 0
					for _, data := range f.records {
						rec, err := change.Decode(data)
						if err != nil {
							b.Fatal(err)
						}
						for i := range rec.Changes {
							if rec.Version == change.Version2 {
								key = change.AppendPartitionKey(key[:0], &rec.Changes[i])
								if !everything.Contains(shardmap.KeyHash(key)) {
									continue
								}
							}
							if _, err := FromChange(&rec.Changes[i], Config{}); err != nil {
								b.Fatal(err)
							}
							events++
						}
					}
					if events != len(burst) {
						b.Fatalf("%d events, want %d", events, len(burst))
					}
				}
				b.ReportMetric(float64(b.N*len(burst))/b.Elapsed().Seconds(), "events/s")
			})
		}
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
