package localbus

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/pattern"
)

func TestLoad(t *testing.T) {
	rs, err := Load("testdata/infra", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Rule{}
	for _, r := range rs.Rules {
		got[r.Name] = r
	}
	want := map[string]struct {
		bus     string
		targets string
	}{
		"UsersInsertRule":               {"walbridge", "WelcomeQueue (AWS::SQS::Queue)"},
		"AnyBusUpdateRule":              {AnyBus, "audit (arn:aws:sqs:us-east-1:123456789012:audit)"},
		"DeleteHandler.Events.OnDelete": {"walbridge", "DeleteHandler (AWS::Serverless::Function)"},
		"OperateTypo":                   {AnyBus, "hook (http://127.0.0.1:9/hook)"},
	}
	if len(got) != len(want) {
		t.Errorf("loaded %d rules, want %d: %v", len(got), len(want), names(rs.Rules))
	}
	for name, w := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("rule %s not loaded", name)
			continue
		}
		var targets []string
		for _, tg := range r.Targets {
			targets = append(targets, tg.String())
		}
		if r.EventBus != w.bus || strings.Join(targets, ", ") != w.targets {
			t.Errorf("rule %s: bus %q targets %q, want bus %q targets %q", name, r.EventBus, targets, w.bus, w.targets)
		}
	}

	skipped := map[string]error{}
	for _, p := range rs.Skipped {
		skipped[p.Rule] = p.Err
	}
	for _, name := range []string{"SeedRuleAsWritten", "ResourceRule", "DisabledRule", ""} {
		if _, ok := skipped[name]; !ok {
			t.Errorf("%q not reported as skipped; skipped: %v", name, rs.Skipped)
		}
	}
	if len(rs.Skipped) != 4 {
		t.Errorf("skipped %d, want 4: %v", len(rs.Skipped), rs.Skipped)
	}

	// The seed rule as written: both mistakes, every field, in one report.
	var errs pattern.Errors
	if !errors.As(skipped["SeedRuleAsWritten"], &errs) {
		t.Fatalf("SeedRuleAsWritten: error %v is not pattern.Errors", skipped["SeedRuleAsWritten"])
	}
	wantErrs := []string{
		"detail.schema: value must be an array, got string",
		"detail.table: value must be an array, got string",
		"detail.operate: unknown field; did you mean detail.operation?",
		"detail.operate: value must be an array, got string",
	}
	if len(errs) != len(wantErrs) {
		t.Errorf("SeedRuleAsWritten errors = %v, want %q", errs, wantErrs)
	}
	for i := range min(len(errs), len(wantErrs)) {
		if errs[i].Error() != wantErrs[i] {
			t.Errorf("SeedRuleAsWritten error %d = %q, want %q", i, errs[i], wantErrs[i])
		}
	}

	if len(rs.Warnings) != 1 || rs.Warnings[0].Rule != "OperateTypo" || !strings.Contains(rs.Warnings[0].Err.Error(), "detail.operate: unknown field") {
		t.Errorf("warnings = %v, want OperateTypo's unknown field", rs.Warnings)
	}

	var report bytes.Buffer
	rs.Report(&report)
	for _, line := range []string{
		"rule UsersInsertRule (testdata/infra/template.yaml) on bus walbridge → WelcomeQueue (AWS::SQS::Queue)\n",
		"rule AnyBusUpdateRule (testdata/infra/template.yaml) on any bus (EventBusName is !Ref, known only at deploy time) → audit (arn:aws:sqs:us-east-1:123456789012:audit)\n",
		"skipped rule SeedRuleAsWritten (testdata/infra/template.yaml):\n  detail.schema: value must be an array, got string\n  detail.table: value must be an array, got string\n  detail.operate: unknown field; did you mean detail.operation?\n  detail.operate: value must be an array, got string\n",
		"skipped rule ResourceRule (testdata/infra/template.yaml):\n  resources: uses !Ref ResourceName: parameter ResourceName has no Default and no value was given\n",
		"skipped rule DisabledRule (testdata/infra/template.yaml): State is DISABLED\n",
		`skipped file testdata/infra/dev-rules/typo.json: dev rule file: json: unknown field "Target"` + "\n",
		"warning: rule OperateTypo (testdata/infra/dev-rules/contract.json) loaded, but it likely never matches a DatabaseEvent:\n  detail.operate: unknown field; did you mean detail.operation?\n",
	} {
		if !strings.Contains(report.String(), line) {
			t.Errorf("report lacks %q; report:\n%s", line, report.String())
		}
	}
	if strings.Contains(report.String(), "not-a-template") {
		t.Errorf("report mentions a file that is not a template:\n%s", report.String())
	}
}

func TestLoadParams(t *testing.T) {
	rs, err := Load("testdata/infra", LoadOptions{Params: map[string]string{"ResourceName": "monolith_database"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Rules {
		if r.Name == "ResourceRule" {
			if string(r.PatternJSON) != `{"resources":["monolith_database"]}` || r.EventBus != DefaultBus {
				t.Errorf("ResourceRule: pattern %s bus %q", r.PatternJSON, r.EventBus)
			}
			return
		}
	}
	t.Errorf("ResourceRule not loaded with ResourceName given: %v", names(rs.Rules))
}

func TestLoadDevRuleProblems(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"no name", `{"EventPattern": {"source": ["a"]}, "Targets": [{"Id": "t", "Url": "http://127.0.0.1:1/"}]}`, "Name is required"},
		{"no pattern", `{"Name": "r", "Targets": [{"Id": "t", "Url": "http://127.0.0.1:1/"}]}`, "EventPattern is required"},
		{"no targets", `{"Name": "r", "EventPattern": {"source": ["a"]}}`, "Targets: give at least one"},
		{"no target id", `{"Name": "r", "EventPattern": {"source": ["a"]}, "Targets": [{"Url": "http://127.0.0.1:1/"}]}`, "Targets[0]: Id is required"},
		{"not http", `{"Name": "r", "EventPattern": {"source": ["a"]}, "Targets": [{"Id": "t", "Url": "sqs://queue"}]}`, `Url "sqs://queue" is not an http(s) URL`},
		{"invalid pattern", `{"Name": "r", "EventPattern": {"source": "a"}, "Targets": [{"Id": "t", "Url": "http://127.0.0.1:1/"}]}`, "source: value must be an array, got string"},
		{"broken JSON", `{"Name": `, "dev rule file: unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, DevRulesDir, "rule.json"), tc.file)
			rs, err := Load(dir, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.Rules) != 0 || len(rs.Skipped) != 1 || !strings.Contains(rs.Skipped[0].Error(), tc.want) {
				t.Errorf("rules %v, skipped %v; want one skipped with %q", names(rs.Rules), rs.Skipped, tc.want)
			}
		})
	}
}

func TestLoadMissingDir(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope"), LoadOptions{}); err == nil {
		t.Error("Load of a missing folder succeeded")
	}
}

func TestBusName(t *testing.T) {
	for in, want := range map[string]string{
		"":          DefaultBus,
		"default":   DefaultBus,
		"walbridge": "walbridge",
		"arn:aws:events:us-east-1:123456789012:event-bus/walbridge": "walbridge",
	} {
		if got := busName(in); got != want {
			t.Errorf("busName(%q) = %q, want %q", in, got, want)
		}
	}
}

func names(rules []Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDuplicateRuleNames: two rules of one name on one bus load, with a
// warning that names both files.
func TestDuplicateRuleNames(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.json", "b.json"} {
		writeFile(t, dir+"/"+DevRulesDir+"/"+f, `{"Name": "Hook", "EventBusName": "walbridge",
			"EventPattern": {"detail": {"table": ["users"]}}, "Targets": [{"Id": "hook", "Url": "http://127.0.0.1:1/"}]}`)
	}
	writeFile(t, dir+"/"+DevRulesDir+"/c.json", `{"Name": "Hook", "EventBusName": "other",
		"EventPattern": {"detail": {"table": ["users"]}}, "Targets": [{"Id": "hook", "Url": "http://127.0.0.1:1/"}]}`)
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	rs.Report(&report)
	if len(rs.Rules) != 3 || len(rs.Duplicates) != 1 || !strings.Contains(report.String(), "a second rule named Hook") ||
		!strings.Contains(report.String(), "a.json") || !strings.Contains(report.String(), "b.json") {
		t.Errorf("%d rules, duplicates %v:\n%s", len(rs.Rules), rs.Duplicates, report.String())
	}
}

// TestWatchReloads: a rule file added while the bus runs is loaded by the
// Watcher,
// and the next event matches it after SetRules.
func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/"+DevRulesDir+"/a.json", `{"Name": "Inserts", "EventBusName": "walbridge",
		"EventPattern": {"detail": {"operation": ["insert"]}}, "Targets": [{"Id": "hook", "Url": "http://127.0.0.1:1/"}]}`)
	b, c := testBus(t, loadRules(t, dir), Options{})
	reloaded := make(chan *RuleSet, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWatcher(dir, LoadOptions{})
	go w.Run(ctx, 10*time.Millisecond, func(rs *RuleSet) { reloaded <- rs })

	s := readSeed(t, "event-update.json")
	putEvents(t, c, s.entry("walbridge"))
	writeFile(t, dir+"/"+DevRulesDir+"/b.json", `{"Name": "Updates", "EventBusName": "walbridge",
		"EventPattern": {"detail": {"operation": ["update"]}}, "Targets": [{"Id": "hook", "Url": "http://127.0.0.1:1/"}]}`)
	select {
	case rs := <-reloaded:
		if len(rs.Rules) != 2 {
			t.Fatalf("reload found %d rules, want 2", len(rs.Rules))
		}
		b.SetRules(rs.Rules)
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s of adding a rule file")
	}
	putEvents(t, c, s.entry("walbridge"))
	recs := b.Records()
	if len(recs) != 2 || len(recs[0].Matches) != 0 || len(recs[1].Matches) != 1 || recs[1].Matches[0].Rule != "Updates" {
		t.Errorf("matches before and after the reload: %+v", recs)
	}
}
