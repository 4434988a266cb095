package event

import (
	"encoding/json"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

// FuzzArray checks that any array text renders as valid JSON (natively or as
// the text fallback) and never panics.
func FuzzArray(f *testing.F) {
	for _, s := range []string{"{}", "{1,2}", `{"a\"b",NULL,"NULL"}`, "[0:1]={1,2}", "{{1,2},{3,4}}", "{ a , b }", `{\,}`, "{{}}", "{(1,1),(0,0);(2,2),(1,1)}"} {
		f.Add(s, "int4")
		f.Add(s, "text")
		f.Add(s, "box")
		f.Add(s, "jsonb")
	}
	f.Fuzz(func(t *testing.T, s, base string) {
		c := change.Column{Name: "c", Base: base, Array: true}
		out := render(c, change.Value{Text: s})
		if !json.Valid([]byte(out)) {
			t.Fatalf("array %q (%s) rendered invalid JSON %s", s, base, out)
		}
	})
}

// FuzzEmbeddableJSON checks the embedding guard against encoding/json: it
// never accepts what encoding/json rejects.
func FuzzEmbeddableJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2]`, `{"a":"\u00e9"}`, `1e400`, `12345678901234567890`, ` null `, `{"a":1,}`, `"\x01"`, `[[[[]]]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if embeddableJSON(s) && !json.Valid([]byte(s)) {
			t.Fatalf("embeddableJSON accepted invalid JSON %q", s)
		}
		c := change.Column{Name: "c", Base: "jsonb"}
		if out := render(c, change.Value{Text: s}); !json.Valid([]byte(out)) {
			t.Fatalf("json value %q rendered invalid JSON %s", s, out)
		}
	})
}

// FuzzScalar renders arbitrary text as every family and checks the result is
// valid JSON.
func FuzzScalar(f *testing.F) {
	f.Add("2021-04-28 16:01:22.5+05:30 BC")
	f.Add(`\x0g`)
	f.Add("1.5e+3")
	f.Fuzz(func(t *testing.T, s string) {
		for _, fam := range families {
			for _, base := range append(fam.PG, "x") {
				c := change.Column{Name: "c", Base: base, Kind: fam.Kind}
				if out := render(c, change.Value{Text: s}); !json.Valid([]byte(out)) {
					t.Fatalf("%s value %q rendered invalid JSON %s", base, s, out)
				}
			}
		}
	})
}
