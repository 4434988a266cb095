package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Exit statuses: 2 for a wrong invocation (bad or missing answers, an
// existing handler without --force), 1 for a failure to write.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const defaultOut = "infra/handlers"

// operations are the operations a DatabaseEvent can have.
var operations = []string{"insert", "update", "delete", "truncate", "read"}

// languages are the handler languages, with the names accepted for each.
var languages = map[string]string{"typescript": "typescript", "ts": "typescript", "go": "go"}

// tableRef is one table the handler receives events of.
type tableRef struct{ Schema, Table string }

func (t tableRef) String() string { return t.Schema + "." + t.Table }

// options are the answers to newhandler's questions.
type options struct {
	Name       string
	Tables     []tableRef
	Operations []string
	Changed    []string
	Language   string
	// BusKind is the walbridge stack's BusKind: "classic" (a rule on the
	// bus) or "ordered" (a FIFO subscriber of the ordered bus).
	BusKind string
	Out     string
	Force   bool
}

// question is one thing newhandler needs, as a flag and as a prompt.
type question struct {
	flag     string
	prompt   string
	optional bool
	// set parses an answer (a flag value or a line typed) into opts.
	set func(opts *options, answer string) error
	// given reports whether opts has an answer already.
	given func(opts *options) bool
}

var questions = []question{
	{
		flag: "name", prompt: "Handler name (lower case, digits and dashes, e.g. welcome-email)",
		set: func(o *options, s string) error {
			s = strings.TrimSpace(s)
			if !validName.MatchString(s) {
				return fmt.Errorf("name %q: use 1 to 48 lower-case letters, digits and dashes, starting with a letter", s)
			}
			o.Name = s
			return nil
		},
		given: func(o *options) bool { return o.Name != "" },
	},
	{
		flag: "table", prompt: "Tables (schema.table or table, comma separated)",
		set: func(o *options, s string) error {
			for _, item := range splitList(s) {
				t, err := parseTable(item)
				if err != nil {
					return err
				}
				if !slices.Contains(o.Tables, t) {
					o.Tables = append(o.Tables, t)
				}
			}
			if len(o.Tables) == 0 {
				return errors.New("no table given")
			}
			return nil
		},
		given: func(o *options) bool { return len(o.Tables) > 0 },
	},
	{
		flag: "operation", prompt: "Operations (insert, update, delete, truncate, read; comma separated)",
		set: func(o *options, s string) error {
			for _, op := range splitList(s) {
				op = strings.ToLower(op)
				if !slices.Contains(operations, op) {
					return fmt.Errorf("operation %q: want one of %s", op, strings.Join(operations, ", "))
				}
				if !slices.Contains(o.Operations, op) {
					o.Operations = append(o.Operations, op)
				}
			}
			if len(o.Operations) == 0 {
				return errors.New("no operation given")
			}
			return nil
		},
		given: func(o *options) bool { return len(o.Operations) > 0 },
	},
	{
		flag: "changed", prompt: "Only when these columns changed (comma separated; empty for any change)", optional: true,
		set: func(o *options, s string) error {
			for _, c := range splitList(s) {
				if !printable(c) {
					return fmt.Errorf("column %q has control characters", c)
				}
				if !slices.Contains(o.Changed, c) {
					o.Changed = append(o.Changed, c)
				}
			}
			return nil
		},
		given: func(o *options) bool { return len(o.Changed) > 0 },
	},
	{
		flag: "language", prompt: "Language (typescript or go)",
		set: func(o *options, s string) error {
			lang, ok := languages[strings.ToLower(strings.TrimSpace(s))]
			if !ok {
				return fmt.Errorf("language %q: want typescript or go", strings.TrimSpace(s))
			}
			o.Language = lang
			return nil
		},
		given: func(o *options) bool { return o.Language != "" },
	},
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,47}$`)

// splitList splits a comma-separated answer; a repeated flag adds to it.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseTable reads schema.table or table (in public). A name with a dot
// in it needs its schema: the first dot separates the two.
func parseTable(s string) (tableRef, error) {
	schema, table, found := strings.Cut(s, ".")
	if !found {
		schema, table = "public", s
	}
	if schema == "" || table == "" || !printable(schema) || !printable(table) {
		return tableRef{}, fmt.Errorf("table %q: want schema.table or table", s)
	}
	return tableRef{Schema: schema, Table: table}, nil
}

func printable(s string) bool {
	return s != "" && strings.IndexFunc(s, unicode.IsControl) < 0
}

// listFlag is a flag that may be repeated and holds a comma list each time.
type listFlag struct {
	q    *question
	opts *options
}

func (f listFlag) String() string { return "" }
func (f listFlag) Set(s string) error {
	return f.q.set(f.opts, s)
}

// run is the whole command behind main, taking its input, output streams
// and whether stdin is a terminal, so tests can drive it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, terminal bool) int {
	opts := options{}
	fs := flag.NewFlagSet("newhandler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for i := range questions {
		q := &questions[i]
		fs.Var(listFlag{q, &opts}, q.flag, q.prompt)
	}
	fs.StringVar(&opts.Out, "out", defaultOut, "folder to write the handler's folder into")
	fs.StringVar(&opts.BusKind, "bus-kind", "classic", "the walbridge stack's BusKind: classic (an EventBridge rule) or ordered (a FIFO subscriber of the ordered bus, each row's events in order)")
	fs.BoolVar(&opts.Force, "force", false, "overwrite an existing handler of the same name")
	interactive := fs.Bool("interactive", false, "ask for what is not given even when stdin is not a terminal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: newhandler --name NAME --table [SCHEMA.]TABLE[,...] --operation OP[,...] [--changed COLUMN[,...]]")
		fmt.Fprintln(stderr, "                  --language typescript|go [--bus-kind classic|ordered] [--out infra/handlers] [--force] [--interactive]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "newhandler: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return exitUsage
	}
	var missing []string
	for _, q := range questions {
		if !q.optional && !q.given(&opts) {
			missing = append(missing, "--"+q.flag)
		}
	}
	if len(missing) > 0 || *interactive {
		if !terminal && !*interactive {
			fmt.Fprintf(stderr, "newhandler: missing %s (standard input is not a terminal, so nothing is asked; --interactive asks anyway)\n", strings.Join(missing, ", "))
			return exitUsage
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if err := ask(&opts, set, bufio.NewReader(stdin), stdout); err != nil {
			fmt.Fprintf(stderr, "newhandler: %v\n", err)
			return exitUsage
		}
	}
	if err := opts.check(); err != nil {
		fmt.Fprintf(stderr, "newhandler: %v\n", err)
		return exitUsage
	}
	dir, err := generate(opts)
	if err != nil {
		fmt.Fprintf(stderr, "newhandler: %v\n", err)
		if errors.Is(err, errExists) {
			return exitUsage
		}
		return exitError
	}
	fmt.Fprintf(stdout, "newhandler: wrote %s (%s, %s)\n", dir, opts.Language, opts.selection())
	fmt.Fprintf(stdout, "newhandler: next: see %s/README.md, \"Write a consumer\"\n", defaultOut)
	return exitOK
}

// ask asks every question whose flag was not given, again until the answer
// is valid.
func ask(opts *options, flagged map[string]bool, in *bufio.Reader, out io.Writer) error {
	for _, q := range questions {
		if flagged[q.flag] {
			continue
		}
		for {
			fmt.Fprintf(out, "%s: ", q.prompt)
			line, err := in.ReadString('\n')
			if err != nil && (err != io.EOF || line == "") {
				if err == io.EOF {
					return fmt.Errorf("no answer for --%s", q.flag)
				}
				return err
			}
			line = strings.TrimSpace(line)
			if line == "" && q.optional {
				break
			}
			if err := q.set(opts, line); err != nil {
				fmt.Fprintf(out, "  %v\n", err)
				continue
			}
			break
		}
	}
	return nil
}

// check reports answers that do not make a handler together.
func (o *options) check() error {
	if len(o.Changed) > 0 && slices.Contains(o.Operations, "truncate") {
		return errors.New("--changed with truncate: truncate events have no changedValues, so the rule would never pass them; make a separate handler for truncates")
	}
	if o.Out == "" {
		return errors.New("--out is empty")
	}
	if o.BusKind != "classic" && o.BusKind != "ordered" {
		return fmt.Errorf("--bus-kind %q: want classic or ordered (the walbridge stack's BusKind)", o.BusKind)
	}
	return nil
}

// selection describes the events the handler receives, for comments and
// descriptions: "public.users insert, update when email changed".
func (o *options) selection() string {
	tables := make([]string, len(o.Tables))
	for i, t := range o.Tables {
		tables[i] = t.String()
	}
	s := strings.Join(tables, ", ") + " " + strings.Join(o.Operations, ", ")
	if len(o.Changed) > 0 {
		s += " when " + strings.Join(o.Changed, " or ") + " changed"
	}
	return s
}
