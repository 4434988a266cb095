package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/pattern"
)

// The templates, and the TypeScript toolchain generated handlers pin:
// node-tools' package.json gives the versions and its package-lock.json
// becomes the handler's, so every handler installs exactly what the tests
// compiled with.
//
//go:embed template node-tools/package.json node-tools/package-lock.json
var embedded embed.FS

var errExists = errors.New("handler exists")

// generatedFiles are every file newhandler may write; with --force, the
// ones the chosen language does not write are removed.
var generatedFiles = []string{
	"rule.json", "template.yaml", "sample-event.json", "put-events.json",
	"handler.ts", "handler.test.ts", "package.json", "package-lock.json", "tsconfig.json", ".gitignore",
	"main.go", "main_test.go",
}

// generate writes the handler and returns its folder.
func generate(o options) (string, error) {
	dir := filepath.Join(o.Out, o.Name)
	if _, err := os.Stat(dir); err == nil && !o.Force {
		return "", fmt.Errorf("%s exists; --force overwrites its generated files: %w", dir, errExists)
	}
	rule := rulePattern(o)
	ruleJSON := marshalJSON(rule)
	if problems := pattern.CheckJSON(ruleJSON, pattern.CheckOptions{DetailType: event.DefaultDetailType}); problems != nil {
		return "", fmt.Errorf("the rule does not pass the rule checker: %w", problems)
	}
	patternYAML, err := indentedYAML(rule, "        ")
	if err != nil {
		return "", err
	}
	sample, err := buildSample(o)
	if err != nil {
		return "", err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, ruleJSON); err != nil {
		return "", err
	}
	data := templateData{
		Name:        o.Name,
		ID:          logicalID(o.Name),
		Selection:   o.selection(),
		Language:    o.Language,
		Ordered:     o.BusKind == "ordered",
		PatternYAML: patternYAML,
		PatternJSON: compact.String(),
		SampleTable: sample.table,
		SampleOp:    sample.op,
		SampleRow:   sample.columns,
	}
	files := map[string][]byte{
		"rule.json":         ruleJSON,
		"sample-event.json": sample.delivered,
		"put-events.json":   sample.entries,
	}
	switch o.Language {
	case "go":
		if err := data.setGoPaths(dir, o.Name); err != nil {
			return "", err
		}
		for name, tmpl := range map[string]string{"main.go": "go/main.go.tmpl", "main_test.go": "go/main_test.go.tmpl"} {
			src, err := render(tmpl, data)
			if err != nil {
				return "", err
			}
			if files[name], err = format.Source(src); err != nil {
				return "", fmt.Errorf("format %s: %w", name, err)
			}
		}
	case "typescript":
		if err := data.setNodeTools(); err != nil {
			return "", err
		}
		for name, tmpl := range map[string]string{"handler.ts": "typescript/handler.ts.tmpl", "handler.test.ts": "typescript/handler.test.ts.tmpl", "package.json": "typescript/package.json.tmpl"} {
			if files[name], err = render(tmpl, data); err != nil {
				return "", err
			}
		}
		if files["package-lock.json"], err = packageLock(o.Name); err != nil {
			return "", err
		}
		if files["tsconfig.json"], err = embedded.ReadFile("template/typescript/tsconfig.json"); err != nil {
			return "", err
		}
		if files[".gitignore"], err = embedded.ReadFile("template/typescript/gitignore"); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("language %q", o.Language)
	}
	if files["template.yaml"], err = render("template.yaml.tmpl", data); err != nil {
		return "", err
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return "", err
		}
	}
	for _, name := range generatedFiles {
		if _, ok := files[name]; !ok {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
		}
	}
	return dir, nil
}

// eventPattern is the rule's event pattern. Field order is the order
// written; the yaml tags give template.yaml the same pattern.
type eventPattern struct {
	DetailType []string      `json:"detail-type" yaml:"detail-type,flow"`
	Detail     detailPattern `json:"detail" yaml:"detail"`
}

type detailPattern struct {
	Or            []tablePattern `json:"$or,omitempty" yaml:"$or,omitempty"`
	Schema        []string       `json:"schema,omitempty" yaml:"schema,flow,omitempty"`
	Table         []string       `json:"table,omitempty" yaml:"table,flow,omitempty"`
	Operation     []string       `json:"operation" yaml:"operation,flow"`
	ChangedValues []string       `json:"changedValues,omitempty" yaml:"changedValues,flow,omitempty"`
}

type tablePattern struct {
	Schema []string `json:"schema" yaml:"schema,flow"`
	Table  []string `json:"table" yaml:"table,flow"`
}

// rulePattern is the pattern for o's events. Tables of one schema are
// listed together; tables in several schemas get one "$or" branch per
// schema, since listing every schema and every table would also pass
// the cross pairs (a.x with b.y).
func rulePattern(o options) eventPattern {
	var groups []tablePattern
	for _, t := range o.Tables {
		i := slices.IndexFunc(groups, func(g tablePattern) bool { return g.Schema[0] == t.Schema })
		if i < 0 {
			groups = append(groups, tablePattern{Schema: []string{t.Schema}})
			i = len(groups) - 1
		}
		groups[i].Table = append(groups[i].Table, t.Table)
	}
	p := eventPattern{
		DetailType: []string{event.DefaultDetailType},
		Detail:     detailPattern{Operation: o.Operations, ChangedValues: o.Changed},
	}
	if len(groups) == 1 {
		p.Detail.Schema, p.Detail.Table = groups[0].Schema, groups[0].Table
	} else {
		p.Detail.Or = groups
	}
	return p
}

// marshalJSON writes v indented, without HTML escapes, with a final
// newline, and with arrays of strings on one line, as people write rules.
func marshalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		panic(err) // only strings, slices and structs
	}
	return stringArray.ReplaceAllFunc(b.Bytes(), func(m []byte) []byte {
		items := jsonString.FindAll(m, -1)
		return append(append([]byte("["), bytes.Join(items, []byte(", "))...), ']')
	})
}

var (
	jsonString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	stringArray = regexp.MustCompile(`\[\s*"(?:[^"\\]|\\.)*"(?:,\s*"(?:[^"\\]|\\.)*")*\s*\]`)
)

// indentedYAML writes v as block YAML with every line indented.
func indentedYAML(v any, indent string) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = indent + l
	}
	return strings.Join(lines, "\n"), nil
}

// sample is the sample event in its two forms, and what the generated tests
// expect of it.
type sample struct {
	delivered, entries []byte
	table, op          string
	columns            []string // the row's columns, in table order
}

// seedRow is the row of the seed events (a users row) that samples are made
// of; --changed columns are added to it as text.
var seedRow = []struct{ name, typ, old, new string }{
	{"id", "int4", "1", "1"},
	{"first_name", "text", "Ben", "Ben"},
	{"last_name", "text", "Limmer", "Limmer"},
	{"email", "text", "ben@example.com", "ben_new@example.com"},
}

// buildSample renders, with package event, an event of the first table and
// operation that the rule passes: an update changes every --changed column.
func buildSample(o options) (sample, error) {
	t, op := o.Tables[0], change.Op(o.Operations[0])
	c := &change.Change{
		Database: "app", Schema: t.Schema, Table: t.Table, Op: op, XID: 123456789,
		CommitLSN: 0x16B374D848, CommitTime: time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC),
		Identity: change.IdentityFull,
	}
	if op != change.Truncate {
		var oldT, newT []change.Value
		for _, col := range seedRow {
			c.Columns = append(c.Columns, change.Column{Name: col.name, Type: col.typ, Base: col.typ, Kind: change.KindBase, Key: col.name == "id"})
			oldT, newT = append(oldT, change.Value{Text: col.old}), append(newT, change.Value{Text: col.new})
		}
		for _, name := range o.Changed {
			i := slices.IndexFunc(c.Columns, func(col change.Column) bool { return col.Name == name })
			if i < 0 {
				c.Columns = append(c.Columns, change.Column{Name: name, Type: "text", Base: "text", Kind: change.KindBase})
				oldT, newT = append(oldT, change.Value{Text: "before"}), append(newT, change.Value{Text: "after"})
				continue
			}
			if oldT[i].Text == newT[i].Text {
				newT[i].Text += "2"
			}
		}
		switch op {
		case change.Insert, change.Read:
			c.New = oldT // the row as first written (or as a backfill read it)
			if op == change.Read {
				c.Backfill = "1"
			}
		case change.Update:
			c.New, c.Old = newT, oldT
		case change.Delete:
			c.Old = oldT
		}
	}
	ev, err := event.FromChange(c, event.Config{})
	if err != nil {
		return sample{}, fmt.Errorf("sample event: %w", err)
	}
	delivered := localbus.Event{
		Version: "0", ID: "5b2f8c1e-3d4a-4e6b-9c7d-0a1b2c3d4e5f", DetailType: ev.DetailType, Source: ev.Source,
		Account: localbus.Account, Time: ev.Time.UTC().Format(time.RFC3339), Region: localbus.DefaultRegion,
		Resources: ev.Resources, Detail: ev.Detail,
	}
	type entry struct {
		Source       string
		DetailType   string
		Detail       string
		Resources    []string
		Time         string
		EventBusName string
	}
	entries := []entry{{Source: ev.Source, DetailType: ev.DetailType, Detail: string(ev.Detail), Resources: ev.Resources,
		Time: delivered.Time, EventBusName: "walbridge"}}
	s := sample{delivered: marshalJSON(delivered), entries: marshalJSON(entries), table: t.String(), op: string(op)}
	if op != change.Truncate {
		for _, col := range c.Columns {
			s.columns = append(s.columns, col.Name)
		}
	}
	return s, nil
}

// templateData is what the templates see.
type templateData struct {
	Name, ID, Selection, Language string
	// Ordered: a FIFO subscriber of the ordered bus instead of a rule.
	Ordered bool
	// The rule's pattern as YAML lines (a rule) and as one line of JSON (a
	// subscriber's filter is JSON text).
	PatternYAML, PatternJSON string
	SampleTable, SampleOp    string
	SampleRow                []string
	// Go: the package's folder from the module root, the binary's path
	// there, and CodeUri (the binary's folder from the template).
	GoPackageDir, GoBinary, GoCodeURI string
	// TypeScript: the pinned devDependencies.
	DevDependencies map[string]string
}

func (d templateData) NameJS() string        { return jsString(d.Name) }
func (d templateData) SampleTableJS() string { return jsString(d.SampleTable) }
func (d templateData) SampleOpJS() string    { return jsString(d.SampleOp) }
func (d templateData) SampleColumnsJS() string {
	return string(bytes.TrimSpace(mustJSON(nonNil(d.SampleRow))))
}
func (d templateData) SampleTableGo() string   { return fmt.Sprintf("%q", d.SampleTable) }
func (d templateData) SampleOpGo() string      { return fmt.Sprintf("%q", d.SampleOp) }
func (d templateData) SampleColumnsGo() string { return fmt.Sprintf("%#v", nonNil(d.SampleRow)) }
func (d templateData) DescriptionJS() string {
	return jsString("Handles walbridge DatabaseEvents of " + d.Selection + ".")
}
func (d templateData) DevDependenciesJS() string {
	return strings.ReplaceAll(strings.TrimSpace(string(marshalJSON(d.DevDependencies))), "\n", "\n  ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func jsString(s string) string { return string(bytes.TrimSpace(mustJSON(s))) }

func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// setGoPaths finds the Go module the handler is in: a Go handler is a
// package main of that module, built with its go.mod.
func (d *templateData) setGoPaths(dir, name string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	root := abs
	for {
		modFile, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err == nil {
			if !bytes.Contains(modFile, []byte("github.com/aws/aws-lambda-go")) {
				return fmt.Errorf("a Go handler builds with its module's go.mod, and %s does not require github.com/aws/aws-lambda-go", filepath.Join(root, "go.mod"))
			}
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return fmt.Errorf("%s is not inside a Go module: a Go handler is a package of the walbridge module (use --out inside it)", dir)
		}
		root = parent
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return err
	}
	d.GoPackageDir = filepath.ToSlash(rel)
	binDir := path.Join("bin", "handlers", name)
	d.GoBinary = binDir + "/bootstrap"
	up, err := filepath.Rel(abs, filepath.Join(root, filepath.FromSlash(binDir)))
	if err != nil {
		return err
	}
	d.GoCodeURI = filepath.ToSlash(up) + "/"
	return nil
}

// setNodeTools reads the pinned devDependencies from node-tools.
func (d *templateData) setNodeTools() error {
	data, err := embedded.ReadFile("node-tools/package.json")
	if err != nil {
		return err
	}
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return fmt.Errorf("node-tools/package.json: %w", err)
	}
	d.DevDependencies = pkg.DevDependencies
	return nil
}

// packageLock is node-tools' lock file under the handler's name.
func packageLock(name string) ([]byte, error) {
	lock, err := embedded.ReadFile("node-tools/package-lock.json")
	if err != nil {
		return nil, err
	}
	const toolsName = `"name": "walbridge-handler"`
	if n := bytes.Count(lock, []byte(toolsName)); n != 2 {
		return nil, fmt.Errorf("node-tools/package-lock.json names the package %d times, want 2 (top and root package)", n)
	}
	return bytes.ReplaceAll(lock, []byte(toolsName), []byte(`"name": `+jsString(name))), nil
}

// logicalID is the CloudFormation logical ID prefix: welcome-email → WelcomeEmail.
func logicalID(name string) string {
	var b strings.Builder
	for _, w := range strings.Split(name, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func render(name string, data templateData) ([]byte, error) {
	t, err := template.New(path.Base(name)).
		Funcs(template.FuncMap{"yaml": func(s string) string { return jsString(s) }}). // a JSON string is a YAML double-quoted scalar
		ParseFS(embedded, "template/"+name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}
