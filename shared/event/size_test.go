package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
)

func TestEntrySize(t *testing.T) {
	ev := Event{Source: "src", DetailType: "dt", Detail: []byte(`{"a":"é"}`), Resources: []string{"r1", "résumé"}}
	// 3 + 2 + 10 (é is two bytes) + 2 + 8
	if got := ev.EntrySize(); got != 25 {
		t.Errorf("EntrySize = %d, want 25", got)
	}
	ev.Time = time.Unix(1, 0)
	if got := ev.EntrySize(); got != 25+14 {
		t.Errorf("EntrySize with Time = %d, want 39", got)
	}
}

func TestShrink(t *testing.T) {
	big, medium := strings.Repeat("x", 5000), strings.Repeat("y", 3000)
	c := &change.Change{Database: "d", Schema: "public", Table: "docs", Op: change.Update, Identity: change.IdentityFull,
		CommitTime: time.Unix(1, 0),
		Columns: []change.Column{
			{Name: "id", Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
			{Name: "body", Type: "text", Base: "text", Kind: change.KindBase},
			{Name: "note", Type: "text", Base: "text", Kind: change.KindBase},
		},
		New: texts("1", big, medium),
		Old: texts("1", "short", medium),
	}
	tests := []struct {
		name        string
		limit       int
		wantOmitted int
		wantFits    bool
		check       func(t *testing.T, d map[string]map[string]map[string]any)
	}{
		{"fits already", 20000, 0, true, nil},
		{"largest value goes first", 7000, 1, true, func(t *testing.T, d map[string]map[string]map[string]any) {
			if d["newValues"]["body"]["omitted"] != true || d["newValues"]["body"]["bytes"] != float64(5000) || d["newValues"]["body"]["type"] != "string" {
				t.Errorf("newValues.body = %v", d["newValues"]["body"])
			}
			if _, ok := d["newValues"]["body"]["value"]; ok {
				t.Error("omitted value still has a value key")
			}
			if d["newValues"]["note"]["value"] != medium || d["oldValues"]["note"]["value"] != medium {
				t.Error("a smaller value was omitted although the largest was enough")
			}
		}},
		{"several values", 1000, 3, true, func(t *testing.T, d map[string]map[string]map[string]any) {
			for _, p := range [][2]string{{"newValues", "body"}, {"newValues", "note"}, {"oldValues", "note"}} {
				if d[p[0]][p[1]]["omitted"] != true {
					t.Errorf("%s.%s not omitted", p[0], p[1])
				}
			}
			if d["newValues"]["id"]["value"] != float64(1) {
				t.Error("small id value omitted needlessly")
			}
		}},
		{"cannot fit", 100, 3, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := FromChange(c, Config{})
			if err != nil {
				t.Fatal(err)
			}
			omitted, fits := ev.Shrink(tt.limit)
			if omitted != tt.wantOmitted || fits != tt.wantFits {
				t.Fatalf("Shrink(%d) = %d, %v; want %d, %v", tt.limit, omitted, fits, tt.wantOmitted, tt.wantFits)
			}
			if fits && ev.EntrySize() > tt.limit {
				t.Fatalf("EntrySize %d > limit %d after Shrink", ev.EntrySize(), tt.limit)
			}
			var d map[string]map[string]map[string]any
			var whole map[string]any
			if err := json.Unmarshal(ev.Detail, &whole); err != nil {
				t.Fatalf("detail after Shrink is not JSON: %v\n%s", err, ev.Detail)
			}
			delete(whole, "changedValues")
			for k, v := range whole {
				if _, ok := v.(map[string]any); !ok {
					delete(whole, k)
				}
			}
			b, _ := json.Marshal(whole)
			mustUnmarshal(t, b, &d)
			if tt.check != nil {
				tt.check(t, d)
			}
			// A second Shrink works on the updated spans.
			if fits {
				if n, ok := ev.Shrink(tt.limit); n != 0 || !ok {
					t.Errorf("second Shrink = %d, %v", n, ok)
				}
			}
		})
	}
}

func TestShrinkTwice(t *testing.T) {
	c := &change.Change{Database: "d", Schema: "s", Table: "t", Op: change.Insert,
		Columns: []change.Column{{Name: "a", Base: "text"}, {Name: "b", Base: "text"}, {Name: "c", Base: "text"}},
		New:     texts(strings.Repeat("a", 300), strings.Repeat("b", 200), strings.Repeat("c", 100))}
	ev, _ := FromChange(c, Config{})
	if n, ok := ev.Shrink(ev.EntrySize() - 250); n != 1 || !ok {
		t.Fatalf("first Shrink = %d, %v", n, ok)
	}
	if n, ok := ev.Shrink(ev.EntrySize() - 150); n != 1 || !ok {
		t.Fatalf("second Shrink = %d, %v", n, ok)
	}
	var d struct {
		NewValues map[string]map[string]any `json:"newValues"`
	}
	mustUnmarshal(t, ev.Detail, &d)
	if d.NewValues["a"]["bytes"] != float64(300) || d.NewValues["b"]["bytes"] != float64(200) || d.NewValues["c"]["value"] != strings.Repeat("c", 100) {
		t.Errorf("after two Shrinks: %s", ev.Detail)
	}
}

// TestShrinkToRefs: the largest values go to the store, their references
// in their place, as few as it takes; the event then fits and keeps its
// other values.
func TestShrinkToRefs(t *testing.T) {
	big, medium := strings.Repeat("x", 5000), strings.Repeat("y", 3000)
	c := &change.Change{Database: "d", Schema: "public", Table: "docs", Op: change.Insert,
		CommitTime: time.Unix(1, 0),
		Columns: []change.Column{
			{Name: "id", Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
			{Name: "body", Type: "text", Base: "text", Kind: change.KindBase},
			{Name: "doc", Type: "jsonb", Base: "jsonb", Kind: change.KindBase},
		},
		New: texts("1", big, `{"k":"`+medium+`"}`),
	}
	ev, err := FromChange(c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string]string{}
	put := func(text string) (*change.Ref, error) {
		r := &change.Ref{Bucket: "values", Key: change.RefKeyPrefix + sha(text), SHA256: sha(text)}
		objects[r.Key] = text
		return r, nil
	}
	moved, fits, err := ev.ShrinkToRefs(4000, "values", put)
	if err != nil || moved != 1 || !fits {
		t.Fatalf("moved %d, fits %v, %v; want the body alone moved", moved, fits, err)
	}
	var d struct {
		NewValues map[string]json.RawMessage `json:"newValues"`
	}
	mustUnmarshal(t, ev.Detail, &d)
	if want := render(c.Columns[1], stored(big)); string(d.NewValues["body"]) != want {
		t.Errorf("body = %s, want %s", d.NewValues["body"], want)
	}
	if objects[change.RefKeyPrefix+sha(big)] != big || len(objects) != 1 {
		t.Errorf("stored %d values", len(objects))
	}
	// Another pass moves the document too, as its text.
	if moved, fits, err = ev.ShrinkToRefs(ev.EntrySize()-1000, "values", put); err != nil || moved != 1 || !fits {
		t.Fatalf("second pass: moved %d, fits %v, %v", moved, fits, err)
	}
	mustUnmarshal(t, ev.Detail, &d)
	if !strings.Contains(string(d.NewValues["doc"]), `"valueEncoding":"text"`) || objects[change.RefKeyPrefix+sha(`{"k":"`+medium+`"}`)] == "" {
		t.Errorf("doc = %s", d.NewValues["doc"])
	}
	ev2, _ := FromChange(c, Config{})
	before := string(ev2.Detail)
	if _, _, err := ev2.ShrinkToRefs(4000, "values", func(string) (*change.Ref, error) { return nil, errors.New("S3 down") }); err == nil || string(ev2.Detail) != before {
		t.Errorf("a failing store: %v, and the event changed: %v", err, string(ev2.Detail) != before)
	}
}
