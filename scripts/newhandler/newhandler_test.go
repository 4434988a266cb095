package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/walbridge/walbridge/shared/cfnrules"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/pattern"
	"github.com/walbridge/walbridge/shared/repo"
)

// newhandler runs the command with every flag given (so it never asks) and
// fails the test unless it succeeds.
func newhandler(t *testing.T, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, strings.NewReader(""), &stdout, &stderr, true); code != exitOK {
		t.Fatalf("newhandler %q exited %d:\n%s%s", args, code, stdout.String(), stderr.String())
	}
}

// inModule makes a folder inside the module for generated handlers: a Go
// handler is a package of the module, so a t.TempDir() outside it would not
// build. It sits under testdata (which go build ./... and go vet ./... pass
// over) rather than infra/, whose tests read every file under it, and is
// removed when the test ends.
func inModule(t *testing.T) (root, dir string) {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp(filepath.Join(root, "scripts", "newhandler", "testdata"), "gen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove generated handlers: %v", err)
		}
	})
	return root, dir
}

// command runs a command in dir and returns its output; it fails the test
// with the output when the command fails.
func command(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil && !filepath.IsAbs(name) {
		t.Fatalf("%s is not installed (scripts/install-deps installs Go, Node.js and npm): %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGeneratedHandlers generates a TypeScript and a Go handler for users
// inserts inside the module, builds and tests both as their README says
// (npm ci with the pinned TypeScript, tsc, node --test; go build, go test),
// and checks their rule: the seed's insert event matches and its update
// does not, the sample event matches, template.yaml carries the same
// pattern, scripts/rulecheck and cfn-lint pass, and the local bus
// (shared/localbus) loads the rule and routes put-events.json to it.
func TestGeneratedHandlers(t *testing.T) {
	root, out := inModule(t)
	newhandler(t, "--name", "users-insert-ts", "--table", "users", "--operation", "insert", "--language", "typescript", "--out", out)
	newhandler(t, "--name", "users-insert-go", "--table", "users", "--operation", "insert", "--language", "go", "--out", out)
	tsDir, goDir := filepath.Join(out, "users-insert-ts"), filepath.Join(out, "users-insert-go")

	t.Run("typescript builds and its test passes", func(t *testing.T) {
		cache := filepath.Join(root, "scripts", "newhandler", "testdata", ".npm-cache")
		command(t, tsDir, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline", "--cache", cache)
		tsc := filepath.Join(tsDir, "node_modules", ".bin", "tsc")
		var tools struct {
			DevDependencies map[string]string `json:"devDependencies"`
		}
		if err := json.Unmarshal(readFile(t, filepath.Join("node-tools", "package.json")), &tools); err != nil {
			t.Fatal(err)
		}
		pinned := tools.DevDependencies["typescript"]
		if v := command(t, tsDir, tsc, "--version"); pinned == "" || !strings.Contains(v, " "+pinned) {
			t.Errorf("npm ci installed %s, want the pinned TypeScript %q", strings.TrimSpace(v), pinned)
		}
		command(t, tsDir, tsc, "-p", ".")
		if res := command(t, tsDir, "node", "--test", "dist/handler.test.js"); !strings.Contains(res, "# pass 3") || !strings.Contains(res, "# fail 0") {
			t.Errorf("node --test:\n%s", res)
		}
	})

	t.Run("go builds and its test passes", func(t *testing.T) {
		rel, err := filepath.Rel(root, goDir)
		if err != nil {
			t.Fatal(err)
		}
		pkg := "./" + filepath.ToSlash(rel)
		command(t, root, "go", "build", "-o", os.DevNull, pkg)
		command(t, root, "go", "vet", pkg)
		if unformatted := command(t, root, "gofmt", "-l", goDir); unformatted != "" {
			t.Errorf("generated Go is not gofmt-ed: %s", unformatted)
		}
		command(t, root, "go", "test", "-count=1", pkg)
	})

	insert := readFile(t, filepath.Join("testdata", "event-insert.json"))
	update := readFile(t, filepath.Join("testdata", "event-update.json"))
	for _, dir := range []string{tsDir, goDir} {
		t.Run(filepath.Base(dir)+" rule", func(t *testing.T) {
			ruleJSON := readFile(t, filepath.Join(dir, "rule.json"))
			p, err := pattern.Parse(ruleJSON)
			if err != nil {
				t.Fatalf("rule.json: %v", err)
			}
			for _, tc := range []struct {
				name  string
				event []byte
				want  bool
			}{
				{"the seed's insert event", insert, true},
				{"the seed's update event", update, false},
				{"sample-event.json", readFile(t, filepath.Join(dir, "sample-event.json")), true},
			} {
				if got, err := p.Match(tc.event); err != nil || got != tc.want {
					t.Errorf("%s: match = %v (%v), want %v", tc.name, got, err, tc.want)
				}
			}

			rules, err := cfnrules.Rules(readFile(t, filepath.Join(dir, "template.yaml")), cfnrules.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != 1 || rules[0].Err != nil {
				t.Fatalf("template.yaml: rules %+v, want one with a literal pattern", rules)
			}
			if !sameJSON(t, rules[0].Pattern, ruleJSON) {
				t.Errorf("template.yaml's pattern %s is not rule.json's %s", rules[0].Pattern, ruleJSON)
			}
			if len(rules[0].Targets) != 1 || rules[0].Targets[0].ResourceType != "AWS::Serverless::Function" {
				t.Errorf("the rule's targets are %+v, want the function", rules[0].Targets)
			}

			res := command(t, root, "go", "run", "./scripts/rulecheck", filepath.Join(dir, "rule.json"), filepath.Join(dir, "template.yaml"))
			if strings.Count(res, ": ok\n") != 2 {
				t.Errorf("rulecheck:\n%s", res)
			}
			lint := command(t, dir, "cfn-lint", "--include-checks", "I", "--", "template.yaml")
			if strings.TrimSpace(lint) != "" {
				t.Errorf("cfn-lint:\n%s", lint)
			}
		})
	}

	t.Run("the local bus routes put-events.json to the rule", func(t *testing.T) {
		rs, err := localbus.Load(tsDir, localbus.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.Rules) != 1 || len(rs.Skipped) != 0 || len(rs.Warnings) != 0 {
			var report bytes.Buffer
			rs.Report(&report)
			t.Fatalf("the local bus loaded %d rules:\n%s", len(rs.Rules), report.String())
		}
		bus := localbus.New(rs.Rules, localbus.Options{})
		defer bus.Close()
		srv := httptest.NewServer(bus)
		defer srv.Close()
		var entries []types.PutEventsRequestEntry
		if err := json.Unmarshal(readFile(t, filepath.Join(tsDir, "put-events.json")), &entries); err != nil {
			t.Fatalf("put-events.json: %v", err)
		}
		resp, err := eventbridgetest.Client(t, srv.URL).PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		if resp.FailedEntryCount != 0 {
			t.Fatalf("PutEvents failed entries: %+v", resp.Entries)
		}
		records := bus.Records()
		if len(records) != 1 || len(records[0].Matches) != 1 || records[0].Matches[0].Rule != "UsersInsertTsRule" {
			t.Errorf("the bus delivered %+v, want one event matching UsersInsertTsRule", records)
		}
	})
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestRefusesAnExistingHandler: a second run with the same name refuses
// unless --force, and --force in the other language leaves no file of the
// first behind.
func TestRefusesAnExistingHandler(t *testing.T) {
	out := t.TempDir()
	args := []string{"--name", "welcome-email", "--table", "users", "--operation", "insert", "--language", "typescript", "--out", out}
	newhandler(t, args...)
	handler := filepath.Join(out, "welcome-email", "handler.ts")
	if err := os.WriteFile(handler, []byte("// my work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, strings.NewReader(""), &stdout, &stderr, false); code != exitUsage {
		t.Fatalf("second run exited %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "exists; --force") {
		t.Errorf("the refusal does not say what to do: %s", stderr.String())
	}
	if got := string(readFile(t, handler)); got != "// my work\n" {
		t.Errorf("the refused run changed handler.ts: %q", got)
	}

	// --force in Go: outside a Go module it cannot be built, and says so.
	force := append([]string{"--force"}, args...)
	force[len(force)-3] = "go"
	stderr.Reset()
	if code := run(force, strings.NewReader(""), &stdout, &stderr, false); code != exitError || !strings.Contains(stderr.String(), "not inside a Go module") {
		t.Errorf("a Go handler outside the module: exit %d, %s", code, stderr.String())
	}
	newhandler(t, append([]string{"--force"}, args...)...)
	if got := string(readFile(t, handler)); got == "// my work\n" {
		t.Error("--force did not rewrite handler.ts")
	}
}

// TestForceSwitchesLanguage: --force in the other language removes the
// first language's generated files.
func TestForceSwitchesLanguage(t *testing.T) {
	_, out := inModule(t)
	args := []string{"--name", "switch", "--table", "users", "--operation", "delete", "--out", out}
	newhandler(t, append(args, "--language", "typescript")...)
	newhandler(t, append(args, "--language", "go", "--force")...)
	entries, err := os.ReadDir(filepath.Join(out, "switch"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"main.go", "main_test.go", "put-events.json", "rule.json", "sample-event.json", "template.yaml"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files after switching to Go: %v, want %v", names, want)
	}
}

// TestAsksForWhatIsMissing answers the questions on stdin as a person at a
// terminal would, with a wrong answer asked again.
func TestAsksForWhatIsMissing(t *testing.T) {
	out := t.TempDir()
	answers := strings.Join([]string{
		"Welcome Email", // refused: upper case and a space
		"welcome-email",
		"users, crm.contacts",
		"insert, update",
		"email",
		"ts",
	}, "\n") + "\n"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--out", out}, strings.NewReader(answers), &stdout, &stderr, true); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	if got := strings.Count(stdout.String(), "Handler name"); got != 2 {
		t.Errorf("the name was asked %d times, want 2 (once again after the wrong answer):\n%s", got, stdout.String())
	}
	var rule eventPattern
	if err := json.Unmarshal(readFile(t, filepath.Join(out, "welcome-email", "rule.json")), &rule); err != nil {
		t.Fatal(err)
	}
	want := detailPattern{
		Or:            []tablePattern{{Schema: []string{"public"}, Table: []string{"users"}}, {Schema: []string{"crm"}, Table: []string{"contacts"}}},
		Operation:     []string{"insert", "update"},
		ChangedValues: []string{"email"},
	}
	if !reflect.DeepEqual(rule.Detail, want) {
		t.Errorf("rule detail %+v, want %+v", rule.Detail, want)
	}
	if _, err := os.Stat(filepath.Join(out, "welcome-email", "handler.ts")); err != nil {
		t.Errorf("no TypeScript handler: %v", err)
	}
}

// TestFlagsOnly: with every flag given nothing is asked, even at a
// terminal; without a terminal a missing flag is an error naming it.
func TestFlagsOnly(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--name", "n", "--table", "t", "--operation", "insert", "--language", "go", "--out", out}
	// "go" outside a module fails after the questions; what matters is that none was asked.
	run(args, strings.NewReader(""), &stdout, &stderr, true)
	if strings.Contains(stdout.String(), "?") || strings.Contains(stdout.String(), "): ") {
		t.Errorf("asked with every flag given:\n%s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--name", "n", "--out", out}, strings.NewReader("t\ninsert\n\ngo\n"), &stdout, &stderr, false); code != exitUsage {
		t.Errorf("missing flags without a terminal: exit %d, want %d", code, exitUsage)
	}
	if msg := stderr.String(); !strings.Contains(msg, "missing --table, --operation, --language") || stdout.Len() != 0 {
		t.Errorf("missing flags: stderr %q, stdout %q", msg, stdout.String())
	}
}

func TestBadAnswers(t *testing.T) {
	base := map[string]string{"name": "h", "table": "users", "operation": "insert", "language": "typescript"}
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"name", "Welcome", "name \"Welcome\""},
		{"name", "-x", "name \"-x\""},
		{"table", ".users", "table \".users\""},
		{"table", "public.", "table \"public.\""},
		{"operation", "upsert", "operation \"upsert\""},
		{"language", "python", "language \"python\""},
		{"changed", "email", "--changed with truncate"},
	} {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			var args []string
			for _, f := range []string{"name", "table", "operation", "language"} {
				v := base[f]
				if f == tc.flag {
					v = tc.value
				}
				if tc.flag == "changed" && f == "operation" {
					v = "update,truncate"
				}
				args = append(args, "--"+f, v)
			}
			if tc.flag == "changed" {
				args = append(args, "--changed", tc.value)
			}
			args = append(args, "--out", t.TempDir())
			var stdout, stderr bytes.Buffer
			if code := run(args, strings.NewReader(""), &stdout, &stderr, false); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestRulePatterns checks generated patterns with the rule checker and
// against events they must and must not match.
func TestRulePatterns(t *testing.T) {
	event := func(schema, table, op string, changed ...string) []byte {
		d := map[string]any{"schema": schema, "table": table, "operation": op}
		if changed != nil {
			d["changedValues"] = changed
		}
		b, _ := json.Marshal(map[string]any{"detail-type": "DatabaseEvent", "source": "walbridge.database", "detail": d})
		return b
	}
	tests := []struct {
		name  string
		opts  options
		match [][]byte
		miss  [][]byte
	}{
		{
			name:  "one table",
			opts:  options{Tables: []tableRef{{"public", "users"}}, Operations: []string{"insert"}},
			match: [][]byte{event("public", "users", "insert", "id")},
			miss:  [][]byte{event("public", "users", "update", "id"), event("public", "orders", "insert", "id"), event("crm", "users", "insert", "id")},
		},
		{
			name:  "changed columns",
			opts:  options{Tables: []tableRef{{"public", "users"}}, Operations: []string{"update"}, Changed: []string{"email", "plan"}},
			match: [][]byte{event("public", "users", "update", "email"), event("public", "users", "update", "name", "plan")},
			miss:  [][]byte{event("public", "users", "update", "name"), event("public", "users", "update")},
		},
		{
			name: "tables in two schemas",
			opts: options{Tables: []tableRef{{"public", "users"}, {"public", "orders"}, {"crm", "contacts"}}, Operations: []string{"insert", "delete"}},
			match: [][]byte{
				event("public", "users", "insert"), event("public", "orders", "delete"), event("crm", "contacts", "insert"),
			},
			miss: [][]byte{event("crm", "users", "insert"), event("public", "contacts", "insert"), event("crm", "contacts", "update")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ruleJSON := marshalJSON(rulePattern(tc.opts))
			if problems := pattern.CheckJSON(ruleJSON, pattern.CheckOptions{DetailType: "DatabaseEvent"}); problems != nil {
				t.Fatalf("rule checker: %v\n%s", problems, ruleJSON)
			}
			p, err := pattern.Parse(ruleJSON)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range tc.match {
				if ok, _ := p.Match(ev); !ok {
					t.Errorf("%s does not match %s", ruleJSON, ev)
				}
			}
			for _, ev := range tc.miss {
				if ok, _ := p.Match(ev); ok {
					t.Errorf("%s matches %s", ruleJSON, ev)
				}
			}
		})
	}
}

// TestOrderedBusHandler: with --bus-kind ordered the template subscribes
// the function to the ordered bus with a FIFO subscriber whose DATA filter
// is rule.json, invoked one event at a time and synchronously (so each
// row's events are handled in order), through a delivery role; rulecheck
// and cfn-lint pass it. The handler's code is the classic one's: a
// subscriber delivers the PutEvents envelope unchanged.
func TestOrderedBusHandler(t *testing.T) {
	root, dir := inModule(t)
	newhandler(t, "--name", "welcome-ordered", "--table", "users", "--operation", "insert,update", "--language", "go", "--bus-kind", "ordered", "--out", dir)
	hdir := filepath.Join(dir, "welcome-ordered")
	tpl := readFile(t, filepath.Join(hdir, "template.yaml"))
	if rules, err := cfnrules.Rules(tpl, cfnrules.Options{}); err != nil || len(rules) != 0 {
		t.Errorf("rules %+v (%v), want none on the ordered bus", rules, err)
	}
	filters, err := cfnrules.Subscribers(tpl, cfnrules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(filters) != 1 || filters[0].Err != nil {
		t.Fatalf("subscriber filters %+v, want one with a literal pattern", filters)
	}
	f := filters[0]
	if f.Scope != "DATA" || f.Type != "FIFO" || f.Target.ResourceType != "AWS::Serverless::Function" || f.EventBusIntrinsic == "" {
		t.Errorf("filter %+v: want a DATA filter of a FIFO subscriber to the function, on the EventBusArn parameter", f)
	}
	if !sameJSON(t, f.Pattern, readFile(t, filepath.Join(hdir, "rule.json"))) {
		t.Errorf("the filter %s is not rule.json's pattern", f.Pattern)
	}
	for _, want := range []string{"InvocationType: REQUEST_RESPONSE", "MaxBatchSize: 1", "Action: lambda:InvokeFunction", "OnFailureConfiguration:"} {
		if !bytes.Contains(tpl, []byte(want)) {
			t.Errorf("template.yaml lacks %q", want)
		}
	}
	if bytes.Contains(tpl, []byte("AWS::Lambda::Permission")) || bytes.Contains(tpl, []byte("AWS::Events::Rule")) {
		t.Error("template.yaml has the classic rule's resources")
	}
	res := command(t, root, "go", "run", "./scripts/rulecheck", filepath.Join(hdir, "template.yaml"))
	if !strings.HasSuffix(res, ": ok\n") {
		t.Errorf("rulecheck:\n%s", res)
	}
	if lint := command(t, hdir, "cfn-lint", "--include-checks", "I", "--", "template.yaml"); strings.TrimSpace(lint) != "" {
		t.Errorf("cfn-lint:\n%s", lint)
	}
	command(t, root, "go", "vet", "./"+strings.TrimPrefix(filepath.ToSlash(hdir), filepath.ToSlash(root)+"/"))

	var stdout, stderr bytes.Buffer
	if code := run([]string{"--name", "x", "--table", "t", "--operation", "insert", "--language", "go", "--bus-kind", "fifo", "--out", dir}, strings.NewReader(""), &stdout, &stderr, true); code != exitUsage || !strings.Contains(stderr.String(), "--bus-kind") {
		t.Errorf("--bus-kind fifo: exit %d, %s", code, stderr.String())
	}
}
