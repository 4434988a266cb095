package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		want   string // exact stdout
		status int
	}{
		{
			name: "seed rule as written",
			args: []string{"testdata/rule-example-as-written.json"},
			want: `testdata/rule-example-as-written.json: detail.schema: value must be an array, got string
testdata/rule-example-as-written.json: detail.table: value must be an array, got string
testdata/rule-example-as-written.json: detail.operate: unknown field; did you mean detail.operation?
testdata/rule-example-as-written.json: detail.operate: value must be an array, got string
`,
			status: exitProblems,
		},
		{
			name:   "seed rule corrected",
			args:   []string{"testdata/rule-example-corrected.json"},
			want:   "testdata/rule-example-corrected.json: ok\n",
			status: exitOK,
		},
		{
			name:   "EventPattern as a JSON string, as describe-rule prints it",
			args:   []string{"testdata/describe-rule.json"},
			want:   `testdata/describe-rule.json: detail.operation: value "insret" never matches: expected one of insert, update, delete, truncate, read; did you mean "insert"?` + "\n",
			status: exitProblems,
		},
		{
			name:   "EventPattern as an object",
			args:   []string{"testdata/eventpattern-object.json"},
			want:   "testdata/eventpattern-object.json: ok\n",
			status: exitOK,
		},
		{
			name: "YAML template: rules, SAM events, intrinsics",
			args: []string{"testdata/template.yaml"},
			want: `testdata/template.yaml#OrdersChangedRule: detail-type: value "DatabaseEvents" never matches: expected one of DatabaseEvent; did you mean "DatabaseEvent"?
testdata/template.yaml#OrdersChangedRule: detail.table: value must be an array, got string
testdata/template.yaml#OrdersChangedRule: detail.operate: unknown field; did you mean detail.operation?
testdata/template.yaml#ParameterisedRule: detail.table: uses CloudFormation intrinsic !Ref, whose value is only known at deploy time; rulecheck cannot check it (--param NAME=VALUE or --defaults resolves parameters)
`,
			status: exitProblems,
		},
		{
			name: "YAML template with known columns",
			args: []string{"--columns-from-json", "testdata/columns.json", "testdata/template.yaml"},
			want: `testdata/template.yaml#OrdersChangedRule: detail-type: value "DatabaseEvents" never matches: expected one of DatabaseEvent; did you mean "DatabaseEvent"?
testdata/template.yaml#OrdersChangedRule: detail.table: value must be an array, got string
testdata/template.yaml#OrdersChangedRule: detail.operate: unknown field; did you mean detail.operation?
testdata/template.yaml#ParameterisedRule: detail.table: uses CloudFormation intrinsic !Ref, whose value is only known at deploy time; rulecheck cannot check it (--param NAME=VALUE or --defaults resolves parameters)
testdata/template.yaml#EmailChangedFunction.Events.EmailChanged: detail.changedValues: value "emial" is not a column of public.users; did you mean "email"?
`,
			status: exitProblems,
		},
		{
			name: "JSON template",
			args: []string{"testdata/template.json"},
			want: `testdata/template.json#StringPatternRule: detail.txnid: value "1" never matches: the field is a number
testdata/template.json#SubRule: detail.schema: uses CloudFormation intrinsic Fn::Sub, whose value is only known at deploy time; rulecheck cannot check it (--param NAME=VALUE or --defaults resolves parameters)
`,
			status: exitProblems,
		},
		{
			name: "ordered-bus subscribers in a template",
			args: []string{"--defaults", "testdata/subscribers.yaml"},
			want: `testdata/subscribers.yaml#Mistakes.Filters[0]: detail.operate: unknown field; did you mean detail.operation?
testdata/subscribers.yaml#Mistakes.Filters[0]: Language "JSONATA": the only filter language is EVENT_BRIDGE_PATTERN
testdata/subscribers.yaml#Mistakes.Filters[0]: detail.table: subscriber filters have no "wildcard" operator (rules do): use prefix, suffix or equals-ignore-case
testdata/subscribers.yaml#Mistakes.Filters[1]: Scope "PAYLOAD": want DATA (the event: source, detail-type, detail, ...), METADATA or SYSTEM_METADATA
testdata/subscribers.yaml#Mistakes.Filters[1]: Language "JSONATA": the only filter language is EVENT_BRIDGE_PATTERN
testdata/subscribers.yaml#Mistakes.Filters[2]: Language "JSONATA": the only filter language is EVENT_BRIDGE_PATTERN
testdata/subscribers.yaml#Mistakes.Filters[2]: a second DATA filter: a subscriber has at most one filter per scope
`,
			status: exitProblems,
		},
		{
			name:   "a subscriber as describe-subscriber prints it",
			args:   []string{"testdata/describe-subscriber.json"},
			want:   `testdata/describe-subscriber.json#FilterConfiguration.Filters[0]: detail.operation: value "insret" never matches: expected one of insert, update, delete, truncate, read; did you mean "insert"?` + "\n",
			status: exitProblems,
		},
		{
			name:   "bare YAML pattern",
			args:   []string{"testdata/pattern.yaml"},
			want:   "testdata/pattern.yaml: ok\n",
			status: exitOK,
		},
		{
			name:   "detail-type check can be turned off",
			args:   []string{"--detail-type", "", "testdata/describe-rule.json"},
			want:   `testdata/describe-rule.json: detail.operation: value "insret" never matches: expected one of insert, update, delete, truncate, read; did you mean "insert"?` + "\n",
			status: exitProblems,
		},
		{
			name:   "other detail-type",
			args:   []string{"--detail-type", "RowChanged", "testdata/eventpattern-object.json"},
			want:   `testdata/eventpattern-object.json: detail-type: value "DatabaseEvent" never matches: expected one of RowChanged` + "\n",
			status: exitProblems,
		},
		{
			name: "several files, one bad",
			args: []string{"testdata/rule-example-corrected.json", "testdata/no-patterns.yaml", "testdata/broken.json", "testdata/pattern.yaml"},
			want: `testdata/rule-example-corrected.json: ok
testdata/no-patterns.yaml: no event patterns found
testdata/broken.json: invalid JSON: unexpected EOF
testdata/pattern.yaml: ok
`,
			status: exitProblems,
		},
		{
			name:   "missing file",
			args:   []string{"testdata/does-not-exist.json"},
			want:   "testdata/does-not-exist.json: open testdata/does-not-exist.json: no such file or directory\n",
			status: exitProblems,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run(tc.args, &stdout, &stderr)
			if status != tc.status {
				t.Errorf("status = %d, want %d (stderr %q)", status, tc.status, stderr.String())
			}
			if got := stdout.String(); got != tc.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no files", nil, "usage: rulecheck"},
		{"unknown flag", []string{"--nope", "x.json"}, "flag provided but not defined"},
		{"missing columns file", []string{"--columns-from-json", "testdata/none.json", "testdata/pattern.yaml"}, "read columns"},
		{"bad columns file", []string{"--columns-from-json", "testdata/template.json", "testdata/pattern.yaml"}, "want an object of"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if status := run(tc.args, &stdout, &stderr); status != exitUsage {
				t.Errorf("status = %d, want %d", status, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestParamResolvesIntrinsics(t *testing.T) {
	var out, errOut strings.Builder
	code := run([]string{"--param", "TableName=orders", "testdata/template.yaml"}, &out, &errOut)
	if strings.Contains(out.String(), "ParameterisedRule") {
		t.Errorf("--param TableName=orders left ParameterisedRule unresolved:\n%s", out.String())
	}
	if code != exitProblems || !strings.Contains(out.String(), "OrdersChangedRule") {
		t.Errorf("exit %d; the template's real mistakes must still be reported:\n%s", code, out.String())
	}
	if code := run([]string{"--param", "novalue", "testdata/template.yaml"}, &out, &errOut); code != exitUsage {
		t.Errorf("--param without = gave exit %d, want %d", code, exitUsage)
	}
}

// TestPolicy: with --policy, a pattern on an excluded column, or on the
// value of a redacted one, of the table it selects can never match.
func TestPolicy(t *testing.T) {
	dir := t.TempDir()
	pol := dir + "/policy.yaml"
	write := func(name, content string) string {
		t.Helper()
		if err := os.WriteFile(dir+"/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir + "/" + name
	}
	write("policy.yaml", "columns:\n  - match: public.users.password_digest\n    action: exclude\n  - match: public.users.ssn\n    action: redact\n")
	for _, tc := range []struct {
		name, pattern, want string
		status              int
	}{
		{"excluded column", `{"detail":{"table":["users"],"newValues":{"password_digest":{"value":["x"]}}}}`,
			"detail.newValues.password_digest: never matches: the column policy excludes this column", exitProblems},
		{"excluded column in changedValues", `{"detail":{"table":["users"],"changedValues":["password_digest"]}}`,
			`detail.changedValues: value "password_digest" never matches: the column policy excludes that column`, exitProblems},
		{"value of a redacted column", `{"detail":{"schema":["public"],"table":["users"],"oldValues":{"ssn":{"value":["1"]}}}}`,
			"detail.oldValues.ssn.value: never matches: the column policy redacts this column", exitProblems},
		{"the redacted marker", `{"detail":{"table":["users"],"newValues":{"ssn":{"redacted":[true]}},"changedValues":["ssn"]}}`, ": ok", exitOK},
		{"another table", `{"detail":{"table":["orders"],"newValues":{"password_digest":{"value":["x"]}}}}`, ": ok", exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := write("rule.json", tc.pattern)
			var stdout, stderr bytes.Buffer
			status := run([]string{"--policy", pol, file}, &stdout, &stderr)
			if status != tc.status || !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("exit %d, want %d; output %q, want it to contain %q (stderr %q)", status, tc.status, stdout.String(), tc.want, stderr.String())
			}
		})
	}
	if status := run([]string{"--policy", write("bad.yaml", "columns: 3\n"), "testdata/rule-example-corrected.json"}, &bytes.Buffer{}, &bytes.Buffer{}); status != exitUsage {
		t.Errorf("a broken policy: exit %d, want %d", status, exitUsage)
	}
}
