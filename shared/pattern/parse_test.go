package pattern

import (
	"errors"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	for _, p := range []string{
		`{"source":["aws.ec2"]}`,
		`{"a":["s",1,-2.5e3,true,false,null,""]}`,
		`{"a":[{"prefix":""}]}`,
		`{"a":[{"numeric":["<=",5e9]}],"b":[{"numeric":[">=",-5e9]}]}`,
		`{"a":[{"cidr":"10.0.0.1/24"}],"b":[{"cidr":"::/0"}]}`,
		`{"a":[{"anything-but":{"wildcard":["*.png","*.jpg"]}}]}`,
		`{"a":[{"exists":true},{"exists":false}]}`,
		`{"$or":[{"a":["1"]},{"b":{"c":["2"]}}]}`,
	} {
		if _, err := Parse([]byte(p)); err != nil {
			t.Errorf("Parse(%s): %v", p, err)
		}
	}
}

// TestParseErrors checks that each kind of syntax error is refused with the
// field path and a message saying what is wrong.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		want    []string // "path: message fragment", one per expected error
	}{
		{"non-array string leaf", `{"detail":{"table":"users"}}`, []string{"detail.table: value must be an array, got string"}},
		{"non-array number leaf", `{"n":5}`, []string{"n: value must be an array, got number"}},
		{"non-array null leaf", `{"n":null}`, []string{"n: value must be an array, got null"}},
		{"empty object as leaf", `{"detail":{"table":{}}}`, []string{"detail.table: empty object"}},
		{"empty pattern", `{}`, []string{": empty object"}},
		{"empty array", `{"source":[]}`, []string{"source: empty array"}},
		{"nested array", `{"source":[["a"]]}`, []string{"source: match values must be"}},
		{"unknown operator", `{"source":[{"prefx":"aws."}]}`, []string{`source: unknown operator "prefx"; did you mean "prefix"?`}},
		{"unknown operator no suggestion", `{"source":[{"regex":"a.*"}]}`, []string{`source: unknown operator "regex" (known:`}},
		{"two operators", `{"source":[{"prefix":"a","suffix":"b"}]}`, []string{"source: a match expression takes exactly one operator, got 2"}},
		{"empty operator", `{"source":[{}]}`, []string{"source: empty match expression"}},
		{"prefix not string", `{"s":[{"prefix":5}]}`, []string{"s: prefix value must be a string"}},
		{"prefix bad ignore case", `{"s":[{"prefix":{"equals-ignore-case":1}}]}`, []string{"s: prefix: equals-ignore-case value must be a string"}},
		{"suffix bad object", `{"s":[{"suffix":{"wildcard":"x"}}]}`, []string{"s: suffix value must be a string"}},
		{"equals-ignore-case not string", `{"s":[{"equals-ignore-case":["a"]}]}`, []string{"s: equals-ignore-case value must be a string, got array"}},
		{"exists not bool", `{"s":[{"exists":"yes"}]}`, []string{"s: exists value must be true or false, got string"}},
		{"numeric not array", `{"n":[{"numeric":5}]}`, []string{"n: numeric: value must be an array"}},
		{"numeric empty", `{"n":[{"numeric":[]}]}`, []string{"n: numeric: empty array"}},
		{"numeric bad operator", `{"n":[{"numeric":["!=",1]}]}`, []string{"n: numeric: expected an operator"}},
		{"numeric value not number", `{"n":[{"numeric":[">","a"]}]}`, []string{`n: numeric: value after ">" must be a number, got string`}},
		{"numeric missing value", `{"n":[{"numeric":[">"]}]}`, []string{`n: numeric: operator ">" has no number after it`}},
		{"numeric reversed range", `{"n":[{"numeric":["<",5,">",1]}]}`, []string{"n: numeric: a range is a lower bound"}},
		{"numeric empty range", `{"n":[{"numeric":[">",5,"<",1]}]}`, []string{"n: numeric: lower bound 5 must be less than upper bound 1"}},
		{"numeric equals with more", `{"n":[{"numeric":["=",1,"<",3]}]}`, []string{"n: numeric: a range is a lower bound"}},
		{"numeric too many", `{"n":[{"numeric":[">",1,"<",3,"<",4]}]}`, []string{"n: numeric: too many elements"}},
		{"numeric out of range", `{"n":[{"numeric":[">",1e10]}]}`, []string{"n: numeric: 1e10 is outside the supported range"}},
		{"cidr bad", `{"ip":[{"cidr":"10.0.0.0/33"}]}`, []string{`ip: cidr: "10.0.0.0/33" is not`}},
		{"cidr no mask", `{"ip":[{"cidr":"10.0.0.1"}]}`, []string{`ip: cidr: "10.0.0.1" is not`}},
		{"wildcard consecutive", `{"s":[{"wildcard":"a**b"}]}`, []string{"s: wildcard: consecutive '*' at position 1"}},
		{"wildcard bad escape", `{"s":[{"wildcard":"a\\b"}]}`, []string{"s: wildcard: invalid escape at position 1"}},
		{"anything-but mixed", `{"s":[{"anything-but":["a",1]}]}`, []string{"s: anything-but list must be all strings or all numbers"}},
		{"anything-but bool", `{"s":[{"anything-but":true}]}`, []string{"s: anything-but value must be a string, number, array or object, got boolean"}},
		{"anything-but null in list", `{"s":[{"anything-but":["a",null]}]}`, []string{"s: anything-but list values must be strings or numbers, got null"}},
		{"anything-but empty list", `{"s":[{"anything-but":[]}]}`, []string{"s: anything-but: empty array"}},
		{"anything-but empty prefix", `{"s":[{"anything-but":{"prefix":""}}]}`, []string{"s: anything-but prefix value must not be empty"}},
		{"anything-but unknown", `{"s":[{"anything-but":{"prefx":"a"}}]}`, []string{`s: anything-but does not support "prefx"`}},
		{"anything-but numeric out of range", `{"s":[{"anything-but":[1,6e9]}]}`, []string{"s: anything-but: 6e9 is outside"}},
		{"or one object", `{"$or":[{"a":["1"]}]}`, []string{"$or: needs at least two objects, got 1"}},
		{"or not array", `{"detail":{"$or":{"a":["1"]}}}`, []string{"detail.$or: value must be an array of objects, got object"}},
		{"or non-object element", `{"$or":[{"a":["1"]},"b"]}`, []string{"$or: element 1 must be an object, got string"}},
		{"error inside or", `{"detail":{"$or":[{"a":"1"},{"b":["2"]}]}}`, []string{"detail.a: value must be an array, got string"}},
		{"duplicate field", `{"source":["a"],"source":["b"]}`, []string{"source: duplicate field"}},
		{"not an object", `["a"]`, []string{": pattern must be a JSON object, got array"}},
		{"invalid json", `{"a":`, []string{": invalid JSON"}},
		{"trailing data", `{"a":["b"]} x`, []string{": invalid JSON"}},
		{"all errors at once", `{"detail":{"schema":"public","table":"users","operate":"insert"},"source":[],"n":[{"numeric":["<"]}]}`, []string{
			"detail.schema: value must be an array, got string",
			"detail.table: value must be an array, got string",
			"detail.operate: value must be an array, got string",
			"source: empty array",
			"n: numeric:",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.pattern))
			if err == nil {
				t.Fatalf("Parse(%s) = %v, want error", tc.pattern, p)
			}
			if p != nil {
				t.Errorf("Parse returned a pattern with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not pattern.Errors", err)
			}
			assertErrors(t, errs, tc.want)
		})
	}
}

// assertErrors checks that errs has exactly one error per wanted
// "path: fragment", in order, with the path matching exactly.
func assertErrors(t *testing.T, errs Errors, want []string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		path, frag, _ := strings.Cut(w, ": ")
		if errs[i].Path != path || !strings.Contains(errs[i].Msg, frag) {
			t.Errorf("error %d = %q (path %q), want path %q containing %q", i, errs[i].Error(), errs[i].Path, path, frag)
		}
	}
}

func TestErrorsFormat(t *testing.T) {
	errs := Errors{{Path: "detail.table", Msg: "bad"}, {Msg: "whole document"}}
	if got, want := errs.Error(), "detail.table: bad; whole document"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
