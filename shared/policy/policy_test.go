package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

const example = `# what consumers never see
columns:
  - match: public.users.password_digest
    action: exclude
  - match: "*.*.email"
    action: hash
  - match: public.users.ssn
    action: redact
  - match: "*.*.api_*"
    action: exclude
tables:
  - match: audit.*
    action: skip
`

func TestParse(t *testing.T) {
	p, err := Parse([]byte(example), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		schema, table, column string
		want                  Action
	}{
		{"public", "users", "password_digest", Exclude},
		{"public", "users", "email", Hash},
		{"billing", "customers", "email", Hash},
		{"public", "users", "ssn", Redact},
		{"public", "users", "api_token", Exclude},
		{"public", "users", "name", ""},
		{"public", "orders", "ssn", ""},
	} {
		r, _ := p.Column(tc.schema, tc.table, tc.column)
		if r.Action != tc.want {
			t.Errorf("%s.%s.%s: %q, want %q", tc.schema, tc.table, tc.column, r.Action, tc.want)
		}
	}
	if r, ok := p.Table("audit", "log"); !ok || r.Action != Skip || r.Line != 12 {
		t.Errorf("audit.log: %+v %v", r, ok)
	}
	if _, ok := p.Table("public", "users"); ok {
		t.Error("public.users skipped")
	}
	if !p.Hashes() {
		t.Error("Hashes() false")
	}
	empty, err := Parse(nil, "empty.yaml")
	if err != nil || empty.Hashes() || len(empty.Columns) != 0 {
		t.Errorf("empty policy: %+v %v", empty, err)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"columns:\n  - match: a.b\n    action: exclude\n", "p.yaml:2: match \"a.b\" has 2 dotted parts; want 3"},
		{"columns:\n  - match: a.b.c\n    action: drop\n", "p.yaml:2: action \"drop\""},
		{"tables:\n  - match: a.b\n    action: hash\n", "p.yaml:2: action \"hash\""},
		{"colums: []\n", "p.yaml:1: unknown key \"colums\""},
		{"columns:\n  - match: a.b.c\n    acton: hash\n", "p.yaml:3: unknown key \"acton\""},
		{"columns:\n  - match: \"a.[.c\"\n    action: hash\n", "p.yaml:2: match"},
		{"columns: [\n", "p.yaml"},
	} {
		_, err := Parse([]byte(tc.doc), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func cols() []change.Column {
	return []change.Column{
		{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
		{Name: "email", OID: 1043, Type: "varchar", Base: "varchar", Kind: change.KindBase},
		{Name: "password_digest", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
		{Name: "ssn", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
		{Name: "name", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
	}
}

func TestPlanApply(t *testing.T) {
	p, err := Parse([]byte(example), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHasher([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := p.Plan("public", "users", cols(), h)
	if err != nil {
		t.Fatal(err)
	}
	c := change.Change{Op: change.Update, Schema: "public", Table: "users", Columns: cols(),
		New: []change.Value{{Text: "1"}, {Text: "a@x"}, {Text: "$2b$secret"}, {Text: "123-45-6789"}, {State: change.Unchanged}},
		Old: []change.Value{{Text: "1"}, {Text: "a@x"}, {Text: "$2b$older"}, {Text: "987-65-4321"}, {Text: "Ada"}}}
	pl.Apply(&c)
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte("a@x"))
	wantHash := hex.EncodeToString(mac.Sum(nil))
	var names []string
	for _, col := range c.Columns {
		names = append(names, col.Name)
	}
	if strings.Join(names, ",") != "id,email,ssn,name" || c.Columns[1].Type != "text" || len(c.New) != 4 || len(c.Old) != 4 {
		t.Fatalf("columns %v (email type %s), tuples %d/%d", names, c.Columns[1].Type, len(c.New), len(c.Old))
	}
	if c.New[1].Text != wantHash || c.Old[1].Text != wantHash {
		t.Errorf("email hashed to %q/%q, want %q", c.New[1].Text, c.Old[1].Text, wantHash)
	}
	if c.New[2] != (change.Value{State: change.Redacted, Changed: true}) || c.Old[2] != (change.Value{State: change.Redacted}) {
		t.Errorf("ssn: new %+v old %+v", c.New[2], c.Old[2])
	}
	if c.New[3].State != change.Unchanged || c.Old[3].Text != "Ada" {
		t.Errorf("name: new %+v old %+v", c.New[3], c.Old[3])
	}
	for _, v := range append(c.New, c.Old...) {
		if strings.Contains(v.Text, "secret") || strings.Contains(v.Text, "45-6789") {
			t.Errorf("a withheld value survived: %+v", v)
		}
	}

	if pl, err := p.Plan("audit", "log", cols(), h); err != nil || !pl.Skip() {
		t.Errorf("audit.log: plan %+v, %v", pl, err)
	}
	if pl, err := p.Plan("public", "orders", []change.Column{{Name: "id", Key: true}}, h); err != nil || pl != nil {
		t.Errorf("untouched table: plan %+v, %v", pl, err)
	}
}

func TestPlanRefusesKeyColumns(t *testing.T) {
	p, err := Parse([]byte("columns:\n  - match: public.users.id\n    action: redact\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Plan("public", "users", cols(), nil)
	if !errors.Is(err, ErrKeyColumn) || !strings.Contains(err.Error(), "public.users.id") || !strings.Contains(err.Error(), "p.yaml:2") {
		t.Errorf("error %v", err)
	}
	p, _ = Parse([]byte("columns:\n  - match: public.users.id\n    action: hash\n"), "p.yaml")
	if _, err := p.Plan("public", "users", cols(), nil); !errors.Is(err, ErrNoHashKey) {
		t.Errorf("hash without key: %v", err)
	}
	if _, err := NewHasher(nil); !errors.Is(err, ErrNoHashKey) {
		t.Errorf("NewHasher(nil): %v", err)
	}
}

func TestLooksSensitive(t *testing.T) {
	for name, want := range map[string]bool{
		"password_digest": true, "PasswordHash": true, "api_key": true, "reset_token": true, "ssn": true, "user_ssn": true,
		"credit_card_number": true, "iban": true, "client_secret": true,
		"classname": false, "email": false, "name": false, "footprint": false, "pinned": false,
	} {
		if _, got := LooksSensitive(name); got != want {
			t.Errorf("LooksSensitive(%q) = %v, want %v", name, got, want)
		}
	}
	p, _ := Parse([]byte(example), "p.yaml")
	got := p.Uncovered([][3]string{{"public", "users", "password_digest"}, {"public", "users", "reset_token"}, {"audit", "log", "token"}, {"public", "users", "name"}})
	if len(got) != 1 || got[0].Name() != "public.users.reset_token" || !strings.Contains(got[0].Suggestion(), "public.users.reset_token") {
		t.Errorf("Uncovered: %+v", got)
	}
}

func TestHasherSum(t *testing.T) {
	h, err := NewHasher([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "a", "b", "", "a"} {
		m := hmac.New(sha256.New, []byte("k"))
		m.Write([]byte(s))
		if got, want := h.Sum(s), hex.EncodeToString(m.Sum(nil)); got != want {
			t.Errorf("Sum(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestHasherDigestsStay hashes more values than one slab holds and checks
// every digest handed out afterwards: none may be overwritten by a later one.
func TestHasherDigestsStay(t *testing.T) {
	h, _ := NewHasher([]byte("k"))
	var got []string
	for i := range 300 {
		got = append(got, h.Sum(strings.Repeat("x", i)))
	}
	for i, g := range got {
		m := hmac.New(sha256.New, []byte("k"))
		m.Write([]byte(strings.Repeat("x", i)))
		if want := hex.EncodeToString(m.Sum(nil)); g != want {
			t.Fatalf("digest %d is %s after later ones, want %s", i, g, want)
		}
	}
}
