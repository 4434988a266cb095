package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/pattern"
)

func col(base string) change.Column {
	return change.Column{Name: "c", Type: base, Base: base, Kind: change.KindBase}
}

func arr(base string) change.Column {
	c := col(base)
	c.Type, c.Array = "_"+base, true
	return c
}

func kind(base string, k change.Kind) change.Column {
	c := col(base)
	c.Kind = k
	return c
}

func render(c change.Column, v change.Value) string {
	out, _ := appendField(nil, typeOf(&c), v)
	return string(out)
}

func TestValueMapping(t *testing.T) {
	tests := []struct {
		name string
		col  change.Column
		text string
		want string
	}{
		{"int4", col("int4"), "42", `{"type":"integer","value":42}`},
		{"int8 max", col("int8"), "9223372036854775807", `{"type":"integer","value":9223372036854775807}`},
		{"int8 min", col("int8"), "-9223372036854775808", `{"type":"integer","value":-9223372036854775808}`},
		{"oid", col("oid"), "4294967295", `{"type":"integer","value":4294967295}`},
		{"int garbage", col("int4"), "12a", `{"type":"integer","value":"12a","valueEncoding":"text"}`},
		{"numeric", col("numeric"), "1234567890123456789012345678901234567890.5", `{"type":"numeric","value":"1234567890123456789012345678901234567890.5"}`},
		{"numeric NaN", col("numeric"), "NaN", `{"type":"numeric","value":"NaN"}`},
		{"float", col("float8"), "1.5e-07", `{"type":"float","value":1.5e-07}`},
		{"float NaN", col("float8"), "NaN", `{"type":"float","value":"NaN"}`},
		{"float -Infinity", col("float4"), "-Infinity", `{"type":"float","value":"-Infinity"}`},
		{"bool", col("bool"), "t", `{"type":"boolean","value":true}`},
		{"bool f", col("bool"), "f", `{"type":"boolean","value":false}`},
		{"text escapes", col("text"), "a\"b\\c\n\x01é", `{"type":"string","value":"a\"b\\c\n\u0001é"}`},
		{"bpchar", col("bpchar"), "ab ", `{"type":"string","value":"ab "}`},
		{"citext", col("citext"), "Ab", `{"type":"string","value":"Ab"}`},
		{"uuid", col("uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `{"type":"uuid","value":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}`},
		{"jsonb", col("jsonb"), `{"a": [1, 2.5, null, true]}`, `{"type":"json","value":{"a": [1, 2.5, null, true]}}`},
		{"json scalar", col("json"), `"x"`, `{"type":"json","value":"x"}`},
		{"json compact", col("json"), `{"a":[1,{"b":null}],"c":"d e"}`, `{"type":"json","value":{"a":[1,{"b":null}],"c":"d e"}}`},
		{"json spaced", col("json"), `{"a": 1}`, `{"type":"json","value":"{\"a\": 1}","valueEncoding":"text"}`},
		{"json repeated key", col("json"), `{"a":1,"a":2}`, `{"type":"json","value":"{\"a\":1,\"a\":2}","valueEncoding":"text"}`},
		{"json repeated nested key", col("json"), `[{"k":1},{"k":2,"x":{"k":3,"k":4}}]`, `{"type":"json","value":"[{\"k\":1},{\"k\":2,\"x\":{\"k\":3,\"k\":4}}]","valueEncoding":"text"}`},
		{"json same key in sibling objects", col("json"), `[{"k":1},{"k":2}]`, `{"type":"json","value":[{"k":1},{"k":2}]}`},
		{"json big integer", col("jsonb"), `{"n": 12345678901234567890}`, `{"type":"json","value":"{\"n\": 12345678901234567890}","valueEncoding":"text"}`},
		{"json null document", col("jsonb"), "null", `{"type":"json","value":"null","valueEncoding":"text"}`},
		{"json invalid", col("json"), `{"a":}`, `{"type":"json","value":"{\"a\":}","valueEncoding":"text"}`},
		{"bytea hex", col("bytea"), `\x00ff10`, `{"type":"bytes","value":"AP8Q"}`},
		{"bytea empty", col("bytea"), `\x`, `{"type":"bytes","value":""}`},
		{"bytea escape format", col("bytea"), `a\000\\`, `{"type":"bytes","value":"YQBc"}`},
		{"date", col("date"), "2021-04-28", `{"type":"date","value":"2021-04-28"}`},
		{"date infinity", col("date"), "-infinity", `{"type":"date","value":"-infinity"}`},
		{"date BC", col("date"), "0044-03-15 BC", `{"type":"date","value":"-0043-03-15"}`},
		{"date 1 BC", col("date"), "0001-01-01 BC", `{"type":"date","value":"0000-01-01"}`},
		{"date far future", col("date"), "10000-01-01", `{"type":"date","value":"10000-01-01"}`},
		{"time", col("time"), "16:01:22.1312", `{"type":"time","value":"16:01:22.131200"}`},
		{"time whole", col("time"), "24:00:00", `{"type":"time","value":"24:00:00.000000"}`},
		{"timetz", col("timetz"), "16:01:22+00", `{"type":"timetz","value":"16:01:22.000000+00:00"}`},
		{"timetz odd offset", col("timetz"), "16:01:22.5-05:30", `{"type":"timetz","value":"16:01:22.500000-05:30"}`},
		{"timestamp", col("timestamp"), "2021-04-28 16:01:22.131231", `{"type":"timestamp","value":"2021-04-28T16:01:22.131231"}`},
		{"timestamp BC", col("timestamp"), "0044-03-15 10:00:00 BC", `{"type":"timestamp","value":"-0043-03-15T10:00:00.000000"}`},
		{"timestamp infinity", col("timestamp"), "infinity", `{"type":"timestamp","value":"infinity"}`},
		{"timestamptz", col("timestamptz"), "2021-04-28 16:01:22.13+00", `{"type":"timestamptz","value":"2021-04-28T16:01:22.130000+00:00"}`},
		{"timestamptz LMT", col("timestamptz"), "1850-01-01 00:00:00+00:53:28", `{"type":"timestamptz","value":"1850-01-01T00:00:00.000000+00:53:28"}`},
		{"timestamptz other DateStyle", col("timestamptz"), "Wed Apr 28 16:01:22 2021 UTC", `{"type":"timestamptz","value":"Wed Apr 28 16:01:22 2021 UTC","valueEncoding":"text"}`},
		{"interval", col("interval"), "P1Y2M3DT4H5M6.5S", `{"type":"interval","value":"P1Y2M3DT4H5M6.5S"}`},
		{"money", col("money"), "$1,000.00", `{"type":"money","value":"$1,000.00"}`},
		{"inet", col("inet"), "192.168.0.1/24", `{"type":"inet","value":"192.168.0.1/24"}`},
		{"macaddr8", col("macaddr8"), "08:00:2b:01:02:03:04:05", `{"type":"macaddr8","value":"08:00:2b:01:02:03:04:05"}`},
		{"varbit", col("varbit"), "0101", `{"type":"bits","value":"0101"}`},
		{"point", col("point"), "(1,2)", `{"type":"point","value":"(1,2)"}`},
		{"tsvector", col("tsvector"), "'a' 'b':2", `{"type":"tsvector","value":"'a' 'b':2"}`},
		{"xml", col("xml"), "<a>1</a>", `{"type":"xml","value":"<a>1</a>"}`},
		{"enum", kind("mood", change.KindEnum), "happy", `{"type":"enum","value":"happy"}`},
		{"composite", kind("pair", change.KindComposite), `(1,"a b")`, `{"type":"composite","value":"(1,\"a b\")"}`},
		{"range", kind("int4range", change.KindRange), "[1,10)", `{"type":"range","value":"[1,10)"}`},
		{"multirange", kind("int4multirange", change.KindMultirange), "{[1,3),[5,7)}", `{"type":"multirange","value":"{[1,3),[5,7)}"}`},
		{"unknown", col("pg_lsn"), "16/B374D848", `{"type":"pg_lsn","value":"16/B374D848"}`},
		{"int array", arr("int4"), "{1,2,NULL}", `{"type":"integer[]","value":[1,2,null]}`},
		{"empty array", arr("int4"), "{}", `{"type":"integer[]","value":[]}`},
		{"2-D array", arr("int8"), "{{1,2},{3,4}}", `{"type":"integer[]","value":[[1,2],[3,4]]}`},
		{"array bounds", arr("int4"), "[0:1]={1,2}", `{"type":"integer[]","value":[1,2],"lowerBounds":[0]}`},
		{"2-D array bounds", arr("int4"), "[1:2][3:3]={{1},{2}}", `{"type":"integer[]","value":[[1],[2]],"lowerBounds":[1,3]}`},
		{"negative lower bound", arr("text"), "[-2:-1]={a,b}", `{"type":"string[]","value":["a","b"],"lowerBounds":[-2]}`},
		{"malformed bounds", arr("int4"), "[0-1]={1,2}", `{"type":"integer[]","value":"[0-1]={1,2}","valueEncoding":"text"}`},
		{"bounds without upper", arr("int4"), "[0:]={1,2}", `{"type":"integer[]","value":"[0:]={1,2}","valueEncoding":"text"}`},
		{"text array quoting", arr("text"), `{"NULL",NULL,"","a,b","q\"x","b\\s",plain," sp "}`, `{"type":"string[]","value":["NULL",null,"","a,b","q\"x","b\\s","plain"," sp "]}`},
		{"float array", arr("float8"), "{NaN,Infinity,-1.5}", `{"type":"float[]","value":["NaN","Infinity",-1.5]}`},
		{"bool array", arr("bool"), "{t,f}", `{"type":"boolean[]","value":[true,false]}`},
		{"json array", arr("jsonb"), `{"{\"a\": 1}","[1, 2]"}`, `{"type":"json[]","value":[{"a": 1},[1, 2]]}`},
		{"bytea array", arr("bytea"), `{"\\x0102",NULL}`, `{"type":"bytes[]","value":["AQI=",null]}`},
		{"box array", arr("box"), "{(1,1),(0,0);(2,2),(1,1)}", `{"type":"box[]","value":["(1,1),(0,0)","(2,2),(1,1)"]}`},
		{"timestamptz array", arr("timestamptz"), `{"2021-04-28 16:01:22+00",infinity}`, `{"type":"timestamptz[]","value":["2021-04-28T16:01:22.000000+00:00","infinity"]}`},
		{"enum array", func() change.Column { c := kind("mood", change.KindEnum); c.Array = true; return c }(), "{happy,sad}", `{"type":"enum[]","value":["happy","sad"]}`},
		{"unknown array", arr("pg_lsn"), "{0/1}", `{"type":"pg_lsn[]","value":["0/1"]}`},
		{"malformed array", arr("int4"), "{1,2", `{"type":"integer[]","value":"{1,2","valueEncoding":"text"}`},
		{"array bad element", arr("int4"), "{1,x}", `{"type":"integer[]","value":"{1,x}","valueEncoding":"text"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(tt.col, change.Value{Text: tt.text})
			if got != tt.want {
				t.Errorf("render(%s %q)\n got %s\nwant %s", tt.col.Base, tt.text, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestValueStates(t *testing.T) {
	tests := []struct {
		name string
		col  change.Column
		v    change.Value
		want string
	}{
		{"null", col("int4"), change.Value{State: change.Null}, `{"type":"integer","value":null}`},
		{"null array", arr("text"), change.Value{State: change.Null}, `{"type":"string[]","value":null}`},
		{"unchanged", col("text"), change.Value{State: change.Unchanged}, `{"type":"string","unchanged":true}`},
		{"omitted", col("bytea"), change.Value{State: change.Omitted, Size: 12345}, `{"type":"bytes","omitted":true,"bytes":12345}`},
		{"in S3, a string", col("text"), stored("b@x"), `{"type":"string","s3":{"bucket":"values","key":"` + change.RefKeyPrefix + sha("b@x") + `"},"bytes":3,"sha256":"` + sha("b@x") + `"}`},
		{"in S3, a document as its text", col("jsonb"), stored(`{"a":1}`), `{"type":"json","s3":{"bucket":"values","key":"` + change.RefKeyPrefix + sha(`{"a":1}`) + `"},"bytes":7,"sha256":"` + sha(`{"a":1}`) + `","valueEncoding":"text"}`},
		{"in S3, an array as its text", arr("text"), stored(`{a,b}`), `{"type":"string[]","s3":{"bucket":"values","key":"` + change.RefKeyPrefix + sha(`{a,b}`) + `"},"bytes":5,"sha256":"` + sha(`{a,b}`) + `","valueEncoding":"text"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(tt.col, tt.v); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

type detail struct {
	Operation             string                     `json:"operation"`
	NewValues             map[string]json.RawMessage `json:"newValues"`
	OldValues             map[string]json.RawMessage `json:"oldValues"`
	ChangedValues         []string                   `json:"changedValues"`
	ChangedValuesComplete *bool                      `json:"changedValuesComplete"`
	Cascade               bool                       `json:"cascade"`
	RestartIdentity       bool                       `json:"restartIdentity"`
}

func TestChangedValues(t *testing.T) {
	null := change.Value{State: change.Null}
	unchanged := change.Value{State: change.Unchanged}
	omitted := change.Value{State: change.Omitted, Size: 9}
	tests := []struct {
		name         string
		identity     change.Identity
		newT, oldT   []change.Value
		oldIsKey     bool
		wantChanged  string
		wantComplete bool
		wantOld      string // comma-joined oldValues keys
		wantNewEmail string
	}{
		{name: "full, one column", identity: change.IdentityFull,
			newT: texts("1", "Ben", "Limmer", "b@x"), oldT: texts("1", "Ben", "Limmer", "a@x"),
			wantChanged: "email", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "full, null to value", identity: change.IdentityFull,
			newT: texts("1", "Ben", "Limmer", "b@x"), oldT: []change.Value{{Text: "1"}, null, {Text: "Limmer"}, {Text: "b@x"}},
			wantChanged: "first_name", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "full, nothing changed", identity: change.IdentityFull,
			newT: texts("1", "Ben", "Limmer", "b@x"), oldT: texts("1", "Ben", "Limmer", "b@x"),
			wantChanged: "", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "full, unchanged TOAST filled from old", identity: change.IdentityFull,
			newT: []change.Value{{Text: "1"}, {Text: "Bob"}, {Text: "Limmer"}, unchanged}, oldT: texts("1", "Ben", "Limmer", "b@x"),
			wantChanged: "first_name", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "full, omitted value", identity: change.IdentityFull,
			newT: []change.Value{{Text: "1"}, {Text: "Bob"}, {Text: "Limmer"}, omitted}, oldT: texts("1", "Ben", "Limmer", "b@x"),
			wantChanged: "first_name", wantComplete: false, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","omitted":true,"bytes":9}`},
		{name: "full, the same value in S3 and as text", identity: change.IdentityFull,
			newT: []change.Value{{Text: "1"}, {Text: "Bob"}, {Text: "Limmer"}, stored("b@x")}, oldT: texts("1", "Ben", "Limmer", "b@x"),
			wantChanged: "first_name", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: render(usersColumns[3], stored("b@x"))},
		{name: "full, another value in S3", identity: change.IdentityFull,
			newT: []change.Value{{Text: "1"}, {Text: "Ben"}, {Text: "Limmer"}, stored("c@x")}, oldT: []change.Value{{Text: "1"}, {Text: "Ben"}, {Text: "Limmer"}, stored("b@x")},
			wantChanged: "email", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: render(usersColumns[3], stored("c@x"))},
		{name: "whole old row sent ('O' tuple), whatever the recorded identity", identity: change.IdentityDefault,
			newT: texts("1", "Ben", "Limmer", "b@x"), oldT: texts("1", "Ben", "Limmer", "a@x"),
			wantChanged: "email", wantComplete: true, wantOld: "email,first_name,id,last_name", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "default, no old tuple", identity: change.IdentityDefault,
			newT:        []change.Value{{Text: "1"}, {Text: "Bob"}, {Text: "Limmer"}, unchanged},
			wantChanged: "", wantComplete: false, wantOld: "", wantNewEmail: `{"type":"string","unchanged":true}`},
		{name: "default, key changed", identity: change.IdentityDefault, oldIsKey: true,
			newT: texts("2", "Ben", "Limmer", "b@x"), oldT: []change.Value{{Text: "1"}, null, null, null},
			wantChanged: "id", wantComplete: false, wantOld: "id", wantNewEmail: `{"type":"string","value":"b@x"}`},
		{name: "index identity on a non-key column", identity: change.IdentityIndex, oldIsKey: true,
			newT: texts("1", "Ben", "Limmer", "new@x"), oldT: []change.Value{null, null, null, {Text: "old@x"}},
			wantChanged: "email", wantComplete: false, wantOld: "email", wantNewEmail: `{"type":"string","value":"new@x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &change.Change{Database: "d", Schema: "public", Table: "users", Op: change.Update, Identity: tt.identity,
				Columns: usersColumns, New: tt.newT, Old: tt.oldT, OldIsKey: tt.oldIsKey}
			ev, err := FromChange(c, Config{})
			if err != nil {
				t.Fatal(err)
			}
			var d detail
			mustUnmarshal(t, ev.Detail, &d)
			if got := strings.Join(d.ChangedValues, ","); got != tt.wantChanged || d.ChangedValues == nil {
				t.Errorf("changedValues = %q, want %q", d.ChangedValues, tt.wantChanged)
			}
			if d.ChangedValuesComplete == nil || *d.ChangedValuesComplete != tt.wantComplete {
				t.Errorf("changedValuesComplete = %v, want %v", d.ChangedValuesComplete, tt.wantComplete)
			}
			if got := strings.Join(sortedKeys(d.OldValues), ","); got != tt.wantOld {
				t.Errorf("oldValues keys = %q, want %q", got, tt.wantOld)
			}
			if got := string(d.NewValues["email"]); got != tt.wantNewEmail {
				t.Errorf("newValues.email = %s, want %s", got, tt.wantNewEmail)
			}
		})
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestTruncateAndDeleteShapes(t *testing.T) {
	trunc := &change.Change{Database: "d", Schema: "public", Table: "users", Op: change.Truncate, Cascade: true}
	ev, err := FromChange(trunc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"txnid":0,"timestamp":"0001-01-01T00:00:00.000000+00:00","schema":"public","table":"users","operation":"truncate","lsn":"0/0","seq":0,"cascade":true}`
	if string(ev.Detail) != want {
		t.Errorf("truncate detail\n got %s\nwant %s", ev.Detail, want)
	}

	del := &change.Change{Database: "d", Schema: "public", Table: "users", Op: change.Delete, Identity: change.IdentityDefault,
		Columns: usersColumns, Old: []change.Value{{Text: "7"}, {State: change.Null}, {State: change.Null}, {State: change.Null}}, OldIsKey: true}
	ev, err = FromChange(del, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var d detail
	mustUnmarshal(t, ev.Detail, &d)
	if got := strings.Join(sortedKeys(d.OldValues), ","); got != "id" || d.NewValues != nil || len(d.ChangedValues) != 4 || d.ChangedValuesComplete != nil {
		t.Errorf("key-only delete detail: %s", ev.Detail)
	}

	if _, err := FromChange(&change.Change{Op: change.Message}, Config{}); err == nil {
		t.Error("FromChange accepted a logical message")
	}
}

func TestFromMessage(t *testing.T) {
	tests := []struct {
		content string
		want    string
	}{
		{"hello", `"content":"hello","transactional":true}`},
		{"\xff\x00", `"content":"/wA=","contentEncoding":"base64","transactional":true}`},
	}
	for _, tt := range tests {
		c := &change.Change{Database: "d", Op: change.Message, XID: 9, CommitLSN: 0x10, Prefix: "app", Content: []byte(tt.content), Transactional: true}
		ev, err := FromMessage(c, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if ev.DetailType != DefaultMessageDetailType || !strings.HasSuffix(string(ev.Detail), tt.want) || !json.Valid(ev.Detail) {
			t.Errorf("message detail %s (detail-type %s), want suffix %s", ev.Detail, ev.DetailType, tt.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := seedChanges()["insert"]
	ev, _ := FromChange(c, Config{})
	if ev.Source != DefaultSource || ev.DetailType != DefaultDetailType || len(ev.Resources) != 1 || ev.Resources[0] != "monolith_database" {
		t.Errorf("defaults: %q %q %q", ev.Source, ev.DetailType, ev.Resources)
	}
	ev, _ = FromChange(c, Config{Source: "s", DetailType: "t", Resource: "arn:aws:rds:x"})
	if ev.Source != "s" || ev.DetailType != "t" || ev.Resources[0] != "arn:aws:rds:x" {
		t.Errorf("overrides: %q %q %q", ev.Source, ev.DetailType, ev.Resources)
	}
	if !ev.Time.Equal(c.CommitTime) {
		t.Errorf("Time = %v, want the commit time", ev.Time)
	}
}

func TestDiff(t *testing.T) {
	col := func(name string, oid uint32, typ string, key bool) change.Column {
		return change.Column{Name: name, OID: oid, Type: typ, Key: key}
	}
	base := []change.Column{col("id", 23, "int4", true), col("name", 25, "text", false), col("n", 23, "int4", false)}
	for _, tc := range []struct {
		name    string
		new     []change.Column
		added   []string
		dropped []string
		renamed []Rename
		retyped []Retype
		key     bool
	}{
		{"add", append(slices.Clone(base), col("note", 25, "text", false)), []string{"note"}, nil, nil, nil, false},
		{"drop", base[:2], nil, []string{"n"}, nil, nil, false},
		{"rename", []change.Column{base[0], col("title", 25, "text", false), base[2]}, nil, nil, []Rename{{"name", "title"}}, nil, false},
		{"retype", []change.Column{base[0], base[1], col("n", 20, "int8", false)}, nil, nil, nil, []Retype{{"n", "int4", "int8"}}, false},
		{"rename the key", []change.Column{col("uid", 23, "int4", true), base[1], base[2]}, nil, nil, []Rename{{"id", "uid"}}, nil, false},
		{"new key", []change.Column{base[0], col("name", 25, "text", true), base[2]}, nil, nil, nil, nil, true},
		{"drop and add of another type is no rename", []change.Column{base[0], col("title", 20, "int8", false), base[2]}, []string{"title"}, []string{"name"}, nil, nil, false},
	} {
		added, dropped, renamed, retyped, key := Diff(base, tc.new)
		if !slices.Equal(added, tc.added) || !slices.Equal(dropped, tc.dropped) || !slices.Equal(renamed, tc.renamed) || !slices.Equal(retyped, tc.retyped) || key != tc.key {
			t.Errorf("%s: added %v dropped %v renamed %v retyped %v key %v", tc.name, added, dropped, renamed, retyped, key)
		}
	}
}

// TestSchemaDetailMatchesTheRuleContract: every field of a
// DatabaseSchemaChange detail is one rulecheck's contract knows, under the
// detail-type fanout publishes.
func TestSchemaDetailMatchesTheRuleContract(t *testing.T) {
	if DefaultSchemaDetailType != pattern.SchemaChangeDetailType {
		t.Fatalf("detail-type %q here, %q in the rule contract", DefaultSchemaDetailType, pattern.SchemaChangeDetailType)
	}
	c := change.Change{Database: "app", Schema: "public", Table: "t", Op: change.SchemaChange, LSN: 0x10,
		Columns: []change.Column{{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true}}, OldColumns: []change.Column{}}
	ev, err := FromSchemaChange(&c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var detail map[string]json.RawMessage
	if err := json.Unmarshal(ev.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	for field := range detail {
		p := `{"detail-type":["` + ev.DetailType + `"],"detail":{"` + field + `":[{"exists":true}]}}`
		// (Fields holding objects get a different complaint: match inside them.)
		if errs := pattern.CheckJSON([]byte(p), pattern.CheckOptions{}); errs != nil && strings.Contains(errs.Error(), "unknown field") {
			t.Errorf("detail.%s: %v", field, errs)
		}
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// stored is text as the claim check leaves it: a reference.
func stored(text string) change.Value {
	return change.Value{State: change.Stored, Size: len(text), Ref: &change.Ref{Bucket: "values", Key: change.RefKeyPrefix + sha(text), SHA256: sha(text)}}
}
