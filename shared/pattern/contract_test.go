package pattern

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	users := map[string][]string{
		"public.users":  {"id", "first_name", "last_name", "email"},
		"public.orders": {"id", "user_id", "total"},
		"audit.log":     nil, // columns unknown: column checks off when selected
	}
	cases := []struct {
		name    string
		pattern string
		opts    CheckOptions
		want    []string // "path: message fragment", in order
	}{
		{"seed as written", string(readTestdata(t, "rule-example-as-written.json")), CheckOptions{DetailType: "DatabaseEvent"}, []string{
			"detail.schema: value must be an array, got string",
			"detail.table: value must be an array, got string",
			"detail.operate: unknown field; did you mean detail.operation?",
			"detail.operate: value must be an array, got string",
		}},
		{"seed corrected", string(readTestdata(t, "rule-example-corrected.json")), CheckOptions{DetailType: "DatabaseEvent"}, nil},
		{"every field", `{"version":["0"],"id":[{"exists":true}],"detail-type":["DatabaseEvent"],"source":[{"prefix":"com."}],"account":["123456789012"],"time":[{"prefix":"2021"}],"region":["us-east-1"],"resources":["monolith_database"],
			"detail":{"txnid":[{"numeric":[">",0]}],"timestamp":[{"prefix":"2021-"}],"schema":["public"],"table":["users"],"operation":["insert","update"],
			"newValues":{"email":{"type":["string"],"value":[{"suffix":"@example.com"}]}},"oldValues":{"email":{"value":[null]}},
			"changedValues":["email"],"lsn":[{"exists":true}],"seq":[0],"changedValuesComplete":[true]}}`, CheckOptions{}, nil},
		{"syntax error still reported", `{"detail":{"table":[]}}`, CheckOptions{}, []string{"detail.table: empty array"}},
		{"not JSON", `{`, CheckOptions{}, []string{": invalid JSON"}},
		{"unknown top-level field", `{"detail_type":["DatabaseEvent"]}`, CheckOptions{}, []string{"detail_type: unknown field; did you mean detail-type?"}},
		{"unknown field case", `{"Detail":{"table":["users"]}}`, CheckOptions{}, []string{"Detail: unknown field; did you mean detail?"}},
		{"unknown field no suggestion", `{"detail":{"zzzzzz":["x"]}}`, CheckOptions{}, []string{"detail.zzzzzz: unknown field (known: backfill, cascade, changedValues, changedValuesComplete, lsn,"}},
		{"unknown field not descended", `{"payload":{"operate":["insert"]}}`, CheckOptions{}, []string{"payload: unknown field"}},
		{"operation typo", `{"detail":{"operation":["insret"]}}`, CheckOptions{}, []string{`detail.operation: value "insret" never matches: expected one of insert, update, delete, truncate, read; did you mean "insert"?`}},
		{"operation plural", `{"detail":{"operation":["updates"]}}`, CheckOptions{}, []string{`detail.operation: value "updates" never matches: expected one of insert, update, delete, truncate, read; did you mean "update"?`}},
		{"operation operators", `{"detail":{"operation":[{"equals-ignore-case":"INSERT"},{"prefix":"up"},{"suffix":"ete"},{"wildcard":"trunc*"},{"anything-but":["truncate"]}]}}`, CheckOptions{}, nil},
		{"operation prefix never", `{"detail":{"operation":[{"prefix":"upsert"}]}}`, CheckOptions{}, []string{`detail.operation: prefix "upsert" never matches: expected one of insert`}},
		{"operation ignore case typo", `{"detail":{"operation":[{"equals-ignore-case":"DELET"}]}}`, CheckOptions{}, []string{`detail.operation: equals-ignore-case "DELET" never matches: expected one of insert, update, delete, truncate, read; did you mean "delete"?`}},
		{"operation anything-but typo", `{"detail":{"operation":[{"anything-but":"truncated"}]}}`, CheckOptions{}, []string{`detail.operation: anything-but value "truncated" never matches: expected one of`}},
		{"operation inside or", `{"$or":[{"detail":{"operation":["insert"]}},{"detail":{"operate":["delete"]}}]}`, CheckOptions{}, []string{"detail.operate: unknown field; did you mean detail.operation?"}},
		{"detail-type set", `{"detail-type":["DatabaseEvents"]}`, CheckOptions{DetailType: "DatabaseEvent"}, []string{`detail-type: value "DatabaseEvents" never matches: expected one of DatabaseEvent; did you mean "DatabaseEvent"?`}},
		{"detail-type unset", `{"detail-type":["Anything"]}`, CheckOptions{}, nil},
		{"number field given string", `{"detail":{"txnid":["123"]}}`, CheckOptions{}, []string{`detail.txnid: value "123" never matches: the field is a number`}},
		{"string field given number", `{"detail":{"table":[5]}}`, CheckOptions{}, []string{"detail.table: value 5 never matches: the field is a string"}},
		{"bool field given string", `{"detail":{"changedValuesComplete":["true"]}}`, CheckOptions{}, []string{`detail.changedValuesComplete: value "true" never matches: the field is a boolean`}},
		{"array of strings given number", `{"resources":[1]}`, CheckOptions{}, []string{"resources: value 1 never matches: the field is an array of strings"}},
		{"numeric on string", `{"detail":{"lsn":[{"numeric":[">",0]}]}}`, CheckOptions{}, []string{"detail.lsn: numeric matching never matches: the field is a string"}},
		{"prefix on number", `{"detail":{"seq":[{"prefix":"1"}]}}`, CheckOptions{}, []string{`detail.seq: prefix "1" never matches: the field is a number`}},
		{"anything-but numbers on string", `{"detail":{"table":[{"anything-but":[1,2]}]}}`, CheckOptions{}, []string{"detail.table: anything-but with numbers never matches: the field is a string"}},
		{"anything-but strings on number", `{"detail":{"seq":[{"anything-but":"0"}]}}`, CheckOptions{}, []string{"detail.seq: anything-but with strings matches every value: the field is a number"}},
		{"null allowed", `{"detail":{"oldValues":{"id":{"value":[null]}}}}`, CheckOptions{}, nil},
		{"leaf on object", `{"detail":{"oldValues":[{"exists":false}]}}`, CheckOptions{}, []string{"detail.oldValues: is an object, not a value"}},
		{"leaf on column", `{"detail":{"newValues":{"email":["ben@example.com"]}}}`, CheckOptions{}, []string{`detail.newValues.email: is an object, not a value: EventBridge matches leaf values only, so values here never match and {"exists": false} always does; match a field inside it (omitted, redacted, type, unchanged, value)`}},
		{"object on scalar", `{"detail":{"operation":{"name":["insert"]}}}`, CheckOptions{}, []string{"detail.operation: is a string, not an object"}},
		{"column field typo", `{"detail":{"newValues":{"email":{"valu":["x"]}}}}`, CheckOptions{}, []string{"detail.newValues.email.valu: unknown field; did you mean detail.newValues.email.value?"}},
		{"any column without tables", `{"detail":{"newValues":{"whatever":{"value":["x"]}}}}`, CheckOptions{}, nil},
		{"value is any", `{"detail":{"newValues":{"n":{"value":[{"numeric":[">",1]}],"type":["integer"]}}}}`, CheckOptions{}, nil},
		{"value nested object", `{"detail":{"newValues":{"doc":{"value":{"kind":["a"]}}}}}`, CheckOptions{}, nil},

		// Tables: table, schema and column names.
		{"known table and columns", `{"detail":{"schema":["public"],"table":["users"],"newValues":{"email":{"value":["x"]}},"changedValues":["email"]}}`, CheckOptions{Tables: users}, nil},
		{"table typo", `{"detail":{"table":["userz"]}}`, CheckOptions{Tables: users}, []string{`detail.table: value "userz" never matches: expected one of log, orders, users; did you mean "users"?`}},
		{"schema typo", `{"detail":{"schema":["pubic"]}}`, CheckOptions{Tables: users}, []string{`detail.schema: value "pubic" never matches: expected one of audit, public; did you mean "public"?`}},
		{"schema unchecked with bare keys", `{"detail":{"schema":["pubic"]}}`, CheckOptions{Tables: map[string][]string{"users": {"id"}}}, nil},
		{"column typo", `{"detail":{"table":["users"],"newValues":{"emial":{"value":["x"]}}}}`, CheckOptions{Tables: users}, []string{"detail.newValues.emial: unknown column of public.users; did you mean detail.newValues.email?"}},
		{"column of other table", `{"detail":{"table":["users"],"oldValues":{"total":{"value":[1]}}}}`, CheckOptions{Tables: users}, []string{"detail.oldValues.total: unknown column of public.users"}},
		{"column of any table", `{"detail":{"table":[{"prefix":"o"}],"oldValues":{"total":{"value":[1]}}}}`, CheckOptions{Tables: map[string][]string{"public.users": {"id"}, "public.orders": {"total"}}}, nil},
		{"changedValues typo", `{"detail":{"table":["users"],"changedValues":["frist_name"]}}`, CheckOptions{Tables: users}, []string{`detail.changedValues: value "frist_name" is not a column of public.users; did you mean "first_name"?`}},
		{"table without column list", `{"detail":{"table":["log"],"newValues":{"anything":{"value":["x"]}}}}`, CheckOptions{Tables: users}, nil},
		{"tables in or branches", `{"detail":{"$or":[{"table":["users"]},{"table":["orders"]}],"newValues":{"total":{"value":[1]}}}}`, CheckOptions{Tables: users}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckJSON([]byte(tc.pattern), tc.opts)
			if tc.want == nil {
				if errs != nil {
					t.Fatalf("CheckJSON = %v, want nil", errs)
				}
				return
			}
			assertErrors(t, errs, tc.want)
		})
	}
}

func TestCheckDatabaseEvent(t *testing.T) {
	p, err := Parse(readTestdata(t, "rule-example-corrected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := CheckDatabaseEvent(p, CheckOptions{DetailType: "DatabaseEvent"}); errs != nil {
		t.Errorf("CheckDatabaseEvent(corrected) = %v, want nil", errs)
	}
	p, err = Parse([]byte(`{"detail-type":["DatabaseEvent"],"detail":{"operate":["insert"],"operation":["inserted"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	assertErrors(t, CheckDatabaseEvent(p, CheckOptions{}), []string{
		"detail.operate: unknown field; did you mean detail.operation?",
		`detail.operation: value "inserted" never matches`,
	})
}

// TestContractIsFresh guards the promise that callers may change the tree
// DatabaseEventContract returns without affecting later checks.
func TestContractIsFresh(t *testing.T) {
	c := DatabaseEventContract()
	c.Fields["detail"].Fields["operation"].Enum = []string{"upsert"}
	delete(c.Fields, "detail-type")
	if errs := CheckJSON([]byte(`{"detail-type":["x"],"detail":{"operation":["insert"]}}`), CheckOptions{}); errs != nil {
		t.Errorf("contract changed by a caller's edit: %v", errs)
	}
}

func TestClosest(t *testing.T) {
	names := []string{"operation", "table", "schema", "seq", "lsn", "id"}
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"operate", "operation", true},
		{"tabel", "table", true},
		{"Schema", "schema", true},
		{"sq", "seq", true},
		{"zzzzzz", "", false},
		{"x", "", false},
	}
	for _, tc := range cases {
		got, ok := closest(tc.in, names)
		if got != tc.want || ok != tc.ok {
			t.Errorf("closest(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSchemaChangeContract: a pattern selecting DatabaseSchemaChange is
// checked against that event's fields, whatever detail-type row events use.
func TestSchemaChangeContract(t *testing.T) {
	opts := CheckOptions{DetailType: "DatabaseEvent", Tables: map[string][]string{"public.users": {"id"}}}
	for _, tc := range []struct {
		pattern string
		want    string // "" for no problem
	}{
		{`{"detail-type":["DatabaseSchemaChange"],"detail":{"table":["users"],"added":["email"]}}`, ""},
		{`{"detail-type":["DatabaseSchemaChange"],"detail":{"renamed":{"to":["title"]},"keyChanged":[true]}}`, ""},
		{`{"detail-type":["DatabaseSchemaChange"],"detail":{"addded":["email"]}}`, "did you mean detail.added"},
		{`{"detail-type":["DatabaseSchemaChange"],"detail":{"operation":["insert"]}}`, "never matches"},
		{`{"detail-type":["DatabaseEvent"],"detail":{"added":["email"]}}`, "unknown field"},
	} {
		errs := CheckJSON([]byte(tc.pattern), opts)
		if tc.want == "" && errs != nil || tc.want != "" && (errs == nil || !strings.Contains(errs.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.pattern, errs, tc.want)
		}
	}
}
