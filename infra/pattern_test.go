package infra

import (
	"encoding/json"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/cfnrules"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/pattern"
)

// foundPattern is one EventPattern (or SAM event Pattern) in a template.
type foundPattern struct {
	file, where string
	raw         any
}

// infraPatterns collects every event pattern in every CloudFormation or SAM
// template under infra/: rules, archives, SAM EventBridgeRule events,
// whatever carries one.
func infraPatterns(t *testing.T) ([]foundPattern, map[string]*template) {
	var found []foundPattern
	templates := map[string]*template{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		tpl, err := parseTemplate([]byte(readFile(t, path)))
		if err != nil || len(tpl.Resources) == 0 {
			return nil // not a template
		}
		templates[path] = tpl
		walk(tpl.Raw["Resources"], []string{"Resources"}, func(p []string, v any) {
			key := p[len(p)-1]
			// A subscriber's filter: FilterConfiguration.Filters[i].Pattern.
			filter := key == "Pattern" && len(p) >= 3 && p[len(p)-3] == "Filters"
			if key == "EventPattern" || (key == "Pattern" && len(p) >= 3 && p[len(p)-3] == "Events") || filter {
				found = append(found, foundPattern{path, strings.Join(p, "."), v})
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].file+found[i].where < found[j].file+found[j].where })
	return found, templates
}

// renderPattern renders a pattern under r and returns its JSON text.
func renderPattern(t *testing.T, r *renderer, raw any) []byte {
	t.Helper()
	v := r.mustRender(t, raw)
	if s, ok := v.(string); ok { // EventPattern may be given as JSON text
		return []byte(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEventPatterns puts every event pattern in infra/ through the rule
// checker (shared/pattern): EventBridge syntax, and the DatabaseEvent
// contract with the deployment's detail-type, under several parameter sets.
func TestEventPatterns(t *testing.T) {
	found, templates := infraPatterns(t)
	if len(found) < 2 {
		t.Fatalf("found %d event patterns in infra/, want at least the rule's and the archive's: %v", len(found), found)
	}
	for _, params := range []map[string]string{
		nil,
		{"EventBusName": "default"},
		{"EventSource": "orders.db", "DetailType": "RowChange", "ResourceName": "orders"},
	} {
		for _, f := range found {
			tpl := templates[f.file]
			own := map[string]string{} // handler templates (infra/handlers) declare fewer parameters
			for k, v := range params {
				if _, ok := tpl.Parameters[k]; ok {
					own[k] = v
				}
			}
			r := newRenderer(t, tpl, own)
			data := renderPattern(t, r, f.raw)
			if !json.Valid(data) {
				t.Errorf("%s %s (%v): not JSON: %s", f.file, f.where, params, data)
				continue
			}
			p, err := pattern.Parse(data)
			if err != nil {
				t.Errorf("%s %s (%v): %s: %v", f.file, f.where, params, data, err)
				continue
			}
			if errs := pattern.CheckDatabaseEvent(p, pattern.CheckOptions{DetailType: r.params["DetailType"]}); errs != nil {
				t.Errorf("%s %s (%v): %s does not fit the DatabaseEvent contract: %v", f.file, f.where, params, data, errs)
			}
			if errs := pattern.CheckJSON(data, pattern.CheckOptions{DetailType: r.params["DetailType"]}); errs != nil {
				t.Errorf("%s %s (%v): CheckJSON: %v", f.file, f.where, params, errs)
			}
		}
	}
}

// TestRulecheckSeesTheSameRules makes sure scripts/rulecheck (which reads
// templates through pattern.TemplateRules) finds every rule here and
// resolves each pattern to the same JSON as the tests above.
func TestRulecheckSeesTheSameRules(t *testing.T) {
	found, templates := infraPatterns(t)
	for file, tpl := range templates {
		params := map[string]string{}
		for k, v := range requiredParamValues {
			params[k] = v
		}
		for k, v := range pseudo {
			params[k] = v
		}
		rules, err := cfnrules.Rules([]byte(readFile(t, file)), cfnrules.Options{Params: params, Defaults: true})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		r := newRenderer(t, tpl, nil)
		want := map[string]any{}
		for _, f := range found {
			p := strings.Split(f.where, ".")
			if f.file == file && len(p) == 4 && tpl.Resources[p[1]]["Type"] == "AWS::Events::Rule" {
				var v any
				if err := json.Unmarshal(renderPattern(t, r, f.raw), &v); err != nil {
					t.Fatal(err)
				}
				want[p[1]] = v
			}
		}
		got := map[string]any{}
		for _, rule := range rules {
			if rule.Err != nil {
				t.Errorf("%s: rulecheck cannot resolve rule %s: %v", file, rule.ID, rule.Err)
				continue
			}
			var v any
			if err := json.Unmarshal(rule.Pattern, &v); err != nil {
				t.Errorf("%s: rule %s: %v", file, rule.ID, err)
			}
			got[rule.ID] = v
		}
		if len(want) == 0 {
			t.Errorf("%s: no rules found", file)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: rulecheck sees rules\n%v\nthe tests see\n%v", file, got, want)
		}

		// The same for subscribers' filters (Resources.X.Properties.FilterConfiguration.Filters.i.Pattern).
		want, got = map[string]any{}, map[string]any{}
		for _, f := range found {
			p := strings.Split(f.where, ".")
			if f.file == file && len(p) == 7 && tpl.Resources[p[1]]["Type"] == "AWS::EventsV2::Subscriber" {
				var v any
				if err := json.Unmarshal(renderPattern(t, r, f.raw), &v); err != nil {
					t.Fatal(err)
				}
				want[p[1]+".Filters["+p[5]+"]"] = v
			}
		}
		filters, err := cfnrules.Subscribers([]byte(readFile(t, file)), cfnrules.Options{Params: params, Defaults: true})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, f := range filters {
			if f.Err != nil {
				t.Errorf("%s: rulecheck cannot resolve %s: %v", file, f.ID(), f.Err)
				continue
			}
			var v any
			if err := json.Unmarshal(f.Pattern, &v); err != nil {
				t.Errorf("%s: %s: %v", file, f.ID(), err)
			}
			got[f.ID()] = v
		}
		if filepath.Clean(file) == filepath.Clean(templatePath) && len(want) == 0 {
			t.Errorf("%s: no subscriber filters found", file)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: rulecheck sees subscriber filters\n%v\nthe tests see\n%v", file, got, want)
		}
	}
}

// TestExampleRuleMatchesFanoutEvents builds DatabaseEvents the way fanout
// does (shared/event, configured from the function's environment in the
// template) and runs them past the example rule and the archive.
func TestExampleRuleMatchesFanoutEvents(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for _, params := range []map[string]string{nil, {"EventSource": "orders.db", "DetailType": "RowChange"}} {
		r := newRenderer(t, tpl, params)
		fn, _ := r.resource(t, "FanoutFunction")
		env := asMap(dig(fn, "Environment", "Variables"))
		cfg := event.Config{
			Source:     scalarString(env["WALBRIDGE_SOURCE"]),
			DetailType: scalarString(env["WALBRIDGE_DETAIL_TYPE"]),
			Resource:   scalarString(env["WALBRIDGE_RESOURCE"]),
		}
		compile := func(resource string) *pattern.Pattern {
			props, _ := r.resource(t, resource)
			p, err := pattern.Parse(renderPattern(t, r, props["EventPattern"]))
			if err != nil {
				t.Fatalf("%s: %v", resource, err)
			}
			return p
		}
		rule, archive := compile("WelcomeEmailRule"), compile("EventArchive")

		tests := []struct {
			schema, table string
			op            change.Op
			wantRule      bool
		}{
			{"public", "users", change.Insert, true},
			{"public", "users", change.Update, false},
			{"public", "users", change.Delete, false},
			{"public", "orders", change.Insert, false},
			{"audit", "users", change.Insert, false},
		}
		for _, tt := range tests {
			c := &change.Change{
				Database: "orders", Schema: tt.schema, Table: tt.table, Op: tt.op,
				XID: 1001, CommitLSN: 0x16B3748, LSN: 0x16B3700, CommitTime: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC),
				Identity: change.IdentityDefault,
				Columns: []change.Column{
					{Name: "id", OID: 20, Type: "int8", Base: "int8", Kind: change.KindBase, Key: true},
					{Name: "email", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
				},
				New: []change.Value{{Text: "42"}, {Text: "ada@example.com"}},
			}
			if tt.op == change.Delete {
				c.Old, c.New, c.OldIsKey = c.New, nil, true
			}
			ev, err := event.FromChange(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The envelope EventBridge wraps around a PutEvents entry.
			envelope, err := json.Marshal(map[string]any{
				"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
				"detail-type": ev.DetailType, "source": ev.Source, "account": pseudo["AWS::AccountId"],
				"time": ev.Time.Format(time.RFC3339), "region": pseudo["AWS::Region"],
				"resources": ev.Resources, "detail": json.RawMessage(ev.Detail),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := rule.Match(envelope); err != nil || got != tt.wantRule {
				t.Errorf("%v: WelcomeEmailRule matches %s %s.%s = %v, %v; want %v", params, tt.op, tt.schema, tt.table, got, err, tt.wantRule)
			}
			if got, err := archive.Match(envelope); err != nil || !got {
				t.Errorf("%v: the archive does not keep %s %s.%s (%v)", params, tt.op, tt.schema, tt.table, err)
			}
		}
	}
}

// TestDefaultsMatchTheEventContract keeps the template's defaults for the
// events' source and detail-type those of shared/event.
func TestDefaultsMatchTheEventContract(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	for param, want := range map[string]string{"EventSource": event.DefaultSource, "DetailType": event.DefaultDetailType} {
		if got := scalarString(tpl.Parameters[param]["Default"]); got != want {
			t.Errorf("parameter %s defaults to %q; shared/event's default is %q", param, got, want)
		}
	}
}
