package pattern

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary pattern and event documents through Parse, Match
// and the contract checks. Rule files come from people and CI; none of these
// may panic, and a refused pattern must always say why.
func FuzzParse(f *testing.F) {
	insert := `{"detail-type":"DatabaseEvent","detail":{"schema":"public","table":"users","operation":"insert","txnid":1,"newValues":{"id":{"type":"integer","value":1}},"changedValues":["id"]}}`
	f.Add(`{"detail-type":["DatabaseEvent"],"detail":{"schema":["public"],"table":["users"],"operation":["insert"]}}`, insert)
	f.Add(`{"detail":{"schema":"public","operate":"insert"}}`, insert)
	f.Add(`{"$or":[{"a":[{"numeric":[">",0,"<=",5]}]},{"b":[{"wildcard":"x*\\*y"}]}],"c":[{"anything-but":{"equals-ignore-case":["A"]}},{"exists":false},{"cidr":"10.0.0.0/8"}]}`, `{"a":[1,[2,{"x":3}]],"b":"x*y","c":null}`)
	f.Add(`{"a":{"b":[{"prefix":{"equals-ignore-case":"Ab"}},null,true,1e400]}}`, `{"a":[{"b":"aBc"},{"b":[]}]}`)
	f.Fuzz(func(t *testing.T, pat, event string) {
		p, err := Parse([]byte(pat))
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Parse error %v is not a non-empty Errors", err)
			}
			if p != nil {
				t.Fatal("Parse returned a pattern with an error")
			}
		} else {
			_, _ = p.Match([]byte(event))
			_ = CheckDatabaseEvent(p, CheckOptions{DetailType: "DatabaseEvent", Tables: map[string][]string{"public.users": {"id"}}})
		}
		checked := CheckJSON([]byte(pat), CheckOptions{})
		if err != nil && len(checked) == 0 {
			t.Fatalf("CheckJSON found nothing in a pattern Parse refused: %v", err)
		}
	})
}
