package change

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample() Change {
	return Change{
		Database: "app", Schema: "public", Table: "users", Op: Update, XID: 42,
		CommitLSN: 0x16B3748, LSN: 0x16B3700, CommitTime: time.Date(2021, 5, 1, 17, 1, 22, 131231000, time.UTC), Seq: 3,
		Identity: IdentityFull,
		Columns: []Column{
			{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: KindBase, Key: true},
			{Name: "email", OID: 1043, Type: "varchar", Base: "varchar", Kind: KindBase},
			{Name: "bio", OID: 25, Type: "text", Base: "text", Kind: KindBase},
			{Name: "tags", OID: 1009, Type: "_text", Base: "text", Kind: KindBase, Array: true},
		},
		New: []Value{{Text: "1"}, {Text: "ben_new@example.com"}, {State: Unchanged}, {State: Omitted, Size: 2 << 20}},
		Old: []Value{{Text: "1"}, {Text: "ben@example.com"}, {State: Null}, {Text: "{\"a\\\"b\",NULL}"}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    Change
	}{
		{"update", sample()},
		{"control characters and unicode", func() Change {
			c := sample()
			c.New[1] = Value{Text: "tab\there \"quoted\" back\\slash \x01\x1f é 漢字 🙂 \u2028"}
			return c
		}()},
		{"claim-check reference", func() Change {
			c := sample()
			c.New[2] = Value{State: Stored, Size: 20 << 20, Ref: &Ref{Bucket: "values", Key: "walbridge/sha256/" + strings.Repeat("ab", 32), SHA256: strings.Repeat("ab", 32)}}
			return c
		}()},
		{"truncate", Change{Database: "app", Schema: "s", Table: "t", Op: Truncate, XID: 1, CommitLSN: 1, LSN: 1, CommitTime: time.Unix(0, 0).UTC(), Cascade: true, RestartIdentity: true}},
		{"message", Change{Database: "app", Op: Message, CommitLSN: 9, LSN: 9, CommitTime: time.Unix(1, 1000).UTC(), Prefix: "p", Content: []byte{0, 1, 2, 255}, Transactional: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := Encode(nil, &Record{Changes: []Change{tc.c, tc.c}})
			if !json.Valid(data) {
				t.Fatalf("not valid JSON: %s", data)
			}
			rec, err := Decode(data)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, data)
			}
			if len(rec.Changes) != 2 {
				t.Fatalf("%d changes", len(rec.Changes))
			}
			got, _ := json.Marshal(rec.Changes[1])
			want, _ := json.Marshal(tc.c)
			if string(got) != string(want) {
				t.Errorf("round trip differs:\n got %s\nwant %s", got, want)
			}
			for i, v := range tc.c.New {
				if v.Ref != nil && !reflect.DeepEqual(rec.Changes[1].New[i].Ref, v.Ref) {
					t.Errorf("reference %d: got %+v, want %+v", i, rec.Changes[1].New[i].Ref, v.Ref)
				}
			}
		})
	}
}

func TestEncodeMatchesPgLSNText(t *testing.T) {
	c := sample()
	c.CommitLSN = 0x1600000000 | 0xB374D848
	data := Encode(nil, &Record{Changes: []Change{c}})
	if !strings.Contains(string(data), `"commitLsn":"16/B374D848"`) {
		t.Errorf("commit LSN not in pg_lsn form: %s", data)
	}
	if !strings.Contains(string(data), `"commitTime":"2021-05-01T17:01:22.131231Z"`) {
		t.Errorf("commit time not microsecond RFC 3339: %s", data)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := string(Encode(nil, &Record{Changes: []Change{sample()}}))
	tests := []struct {
		name, data string
		is         error
		want       string
	}{
		{"not json", "{", nil, "decode change record"},
		{"no version", `{"changes":[]}`, nil, "no version"},
		{"future version", `{"v":3,"changes":[]}`, ErrUnknownVersion, "version 3"},
		{"v2 no changes", `{"v":2,"shapes":[],"changes":[]}`, nil, "no changes"},
		{"v2 shape out of range", `{"v":2,"shapes":[],"changes":[{"shape":0,"op":"insert","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z","new":[]}]}`, nil, "shape 0 of 0"},
		{"v2 shape and own fields", `{"v":2,"shapes":[{"database":"a","schema":"s","table":"t","columns":[{"name":"id","oid":23,"type":"int4","base":"int4","kind":"base","key":true}]}],"changes":[{"shape":0,"table":"x","op":"insert","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z","new":["1"]}]}`, nil, "fields of its own"},
		{"v2 truncate with a shape", `{"v":2,"shapes":[{"database":"a","schema":"s","table":"t","columns":[{"name":"id","oid":23,"type":"int4","base":"int4","kind":"base","key":true}]}],"changes":[{"shape":0,"op":"truncate","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z"}]}`, nil, "has no shape"},
		{"v2 tuple mismatch", `{"v":2,"shapes":[{"database":"a","schema":"s","table":"t","columns":[{"name":"id","oid":23,"type":"int4","base":"int4","kind":"base","key":true}]}],"changes":[{"shape":0,"op":"insert","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z","new":["1","2"]}]}`, nil, "2 values for 1 columns"},
		{"bad zstd", "\x28\xb5\x2f\xfd\x00garbage", nil, "decompress"},
		{"no changes", `{"v":1,"changes":[]}`, nil, "no changes"},
		{"unknown op", `{"v":1,"changes":[{"database":"a","op":"merge","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z"}]}`, nil, "unknown operation"},
		{"tuple mismatch", strings.Replace(good, `"new":["1",`, `"new":[`, 1), nil, "3 values for 4 columns"},
		{"bad marker", strings.Replace(good, `{"unchanged":true}`, `{"x":1}`, 1), nil, "neither unchanged nor omitted"},
		{"bad lsn", strings.Replace(good, `"commitLsn":"0/16B3748"`, `"commitLsn":"zz"`, 1), nil, "LSN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestPartitionKey(t *testing.T) {
	long := strings.Repeat("x", 300)
	withKey := func(op Op, newID, oldID string) *Change {
		c := sample()
		c.Op = op
		c.New[0] = Value{Text: newID}
		c.Old = nil
		if oldID != "" {
			c.Old = []Value{{Text: oldID}, {State: Null}, {State: Null}, {State: Null}}
		}
		return &c
	}
	tests := []struct {
		name string
		c    *Change
		want string
	}{
		{"insert", withKey(Insert, "1", ""), "public.users/1"},
		{"update keeps key", withKey(Update, "1", ""), "public.users/1"},
		{"update changes key: old key", withKey(Update, "2", "1"), "public.users/1"},
		{"delete", withKey(Delete, "", "7"), "public.users/7"},
		{"separator escaped", withKey(Insert, "a/b", ""), `public.users/a\/b`},
		{"escape escaped", withKey(Insert, `a\/b\`, ""), `public.users/a\\\/b\\`},
		{"null key value", &Change{Schema: "s", Table: "t", Op: Insert, Columns: []Column{{Name: "a", Key: true}, {Name: "v"}, {Name: "b", Key: true}},
			New: []Value{{State: Null}, {Text: "x"}, {Text: "2"}}}, `s.t/\N/2`},
		{"empty", &Change{Op: Message}, "message:"},
		{"nothing at all", &Change{}, "."},
		{"no key", &Change{Schema: "public", Table: "audit", Op: Insert}, "public.audit"},
		{"truncate", &Change{Schema: "public", Table: "users", Op: Truncate}, "public.users"},
		{"message", &Change{Op: Message, Prefix: "jobs"}, "message:jobs"},
	}
	for _, tc := range tests {
		if got := PartitionKey(tc.c); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range tests {
		if got := string(AppendPartitionKey([]byte("prefix|"), tc.c)); got != "prefix|"+tc.want {
			t.Errorf("%s: AppendPartitionKey gave %q", tc.name, got)
		}
	}
	if got := string(AppendPartitionKey([]byte("p|"), withKey(Insert, long, ""))); got != "p|"+PartitionKey(withKey(Insert, long, "")) {
		t.Errorf("AppendPartitionKey of a long key: %q", got)
	}
	k := PartitionKey(withKey(Insert, long, ""))
	if !strings.HasPrefix(k, "sha256:") || len(k) > MaxPartitionKey || k != PartitionKey(withKey(Insert, long, "")) {
		t.Errorf("long key %q: want a stable hash within %d characters", k, MaxPartitionKey)
	}
	if PartitionKey(withKey(Insert, long+"y", "")) == k {
		t.Errorf("different long keys hash alike")
	}
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "0/16B3748", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		if l.String() != s || string(AppendLSN(nil, l)) != s {
			t.Errorf("%s: String %s append %s", s, l, AppendLSN(nil, l))
		}
	}
	for _, s := range []string{"", "1", "x/1", "1/x", "100000000/0"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) accepted", s)
		}
	}
}

// FuzzDecode: arbitrary bytes never panic the decoder, and what it accepts
// re-encodes to something it accepts again, identically.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, &Record{Changes: []Change{sample()}}))
	f.Add([]byte(`{"v":1,"changes":[{"database":"a","op":"message","commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z","prefix":"p","content":"AAE="}]}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"changes":[{"op":"insert","table":"t","columns":[{"name":"a"}],"new":[{"unchanged":true}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Decode(Encode(nil, rec))
		if err != nil {
			t.Fatalf("re-encoded record rejected: %v", err)
		}
		a, _ := json.Marshal(rec)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("unstable round trip:\n%s\n%s", a, b)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	rec := &Record{Changes: []Change{sample()}}
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = Encode(buf[:0], rec)
	}
	b.SetBytes(int64(len(buf)))
}

// TestDecodeErrorsQuoteNoValues feeds records that are malformed where a
// value sits; the error (which fanout logs at the default level) must say
// where and what, never quote the bytes.
func TestDecodeErrorsQuoteNoValues(t *testing.T) {
	const secret = "Zq9hunter2"
	const digits = "424242424242424242424242"
	head := `{"v":1,"changes":[{"database":"a","schema":"s","table":"t","op":"insert","xid":1,"commitLsn":"0/1","lsn":"0/1","commitTime":"2021-01-01T00:00:00Z","seq":0,"columns":[{"name":"c","oid":25,"type":"text","base":"text","kind":"base"}],`
	for _, tc := range []struct{ name, data, leak string }{
		{"bare token where a value belongs", head + `"new":[` + secret + `]}]}`, secret},
		{"number where a string belongs", head + `"new":[` + digits + `]}]}`, digits},
		{"number out of range", strings.Replace(head, `"xid":1`, `"xid":`+digits, 1) + `"new":["x"]}]}`, digits},
		{"bad LSN", strings.Replace(head, `"commitLsn":"0/1"`, `"commitLsn":"`+secret+`"`, 1) + `"new":["x"]}]}`, secret},
		{"unknown operation", strings.Replace(head, `"op":"insert"`, `"op":"`+secret+`"`, 1) + `"new":["x"]}]}`, secret},
		{"bad escape", head + `"new":["\` + secret + `"]}]}`, secret},
		{"version not a number", `{"changes":[],"v":"` + secret + `"}`, secret},
		{"truncated", (head + `"new":["` + secret)[:len(head)+len(`"new":["`)+6], secret[:6]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			if err == nil {
				t.Fatal("decoded a malformed record")
			}
			msg := err.Error()
			if strings.Contains(msg, tc.leak) || strings.Contains(msg, "'"+tc.leak[:1]+"'") || strings.Contains(msg, `"`+tc.leak[:1]) {
				t.Errorf("error quotes the record: %s", msg)
			}
		})
	}
}
