package schema

import "testing"

func TestGeneratedNames(t *testing.T) {
	for _, tc := range []struct {
		parts      []string
		goName, ts string
	}{
		{[]string{"public", "users"}, "PublicUsers", "PublicUsers"},
		{[]string{"user_id"}, "UserID", "UserId"},
		{[]string{"first name"}, "FirstName", "FirstName"},
		{[]string{"2fa"}, "X2fa", "X2fa"},
		{[]string{"é"}, "É", "É"},
		{[]string{"---"}, "X", "X"},
	} {
		if got := pascal(true, tc.parts...); got != tc.goName {
			t.Errorf("Go name of %q: %s, want %s", tc.parts, got, tc.goName)
		}
		if got := pascal(false, tc.parts...); got != tc.ts {
			t.Errorf("TypeScript name of %q: %s, want %s", tc.parts, got, tc.ts)
		}
	}
	u := uniqueNames{}
	if a, b, c := u.add("A"), u.add("A"), u.add("A"); a != "A" || b != "A2" || c != "A3" {
		t.Errorf("uniqueNames: %s %s %s", a, b, c)
	}
	for name, want := range map[string]bool{"id": true, "$x": true, "first name": false, "2fa": false, "": false} {
		if got := tsIdentifier(name); got != want {
			t.Errorf("tsIdentifier(%q) = %v", name, got)
		}
	}
	for name, want := range map[string]bool{"first name": true, "a.b": true, "a,b": false, `q"x`: false, "": false} {
		if got := jsonTagKey(name); got != want {
			t.Errorf("jsonTagKey(%q) = %v", name, got)
		}
	}
}
