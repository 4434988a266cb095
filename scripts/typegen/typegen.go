package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/scripts/typegen/schema"
	"github.com/walbridge/walbridge/shared/policy"
)

// Exit statuses: 2 for a wrong invocation, 1 for a failure to generate.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const schemaSuffix = ".schema.json"

// run is the whole command behind main, taking its arguments and output
// streams so tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("typegen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the database to read (required; env DATABASE_URL)")
	publication := fs.String("publication", "walbridge", "publication whose tables to describe; every user table when it does not exist")
	out := fs.String("out", "dbevents", "directory to write into")
	pkg := fs.String("package", "dbevents", "package name of events.go")
	policyFile := fs.String("policy", os.Getenv("WALBRIDGE_POLICY"), "capture's column policy: excluded columns and skipped tables vanish, hashed columns are strings (env WALBRIDGE_POLICY)")
	check := fs.Bool("check", false, "write nothing; exit 1 when the bindings in --out differ from what the live schema gives (a consumer's CI step)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: typegen --database-url URL [--publication walbridge] [--policy FILE] [--out DIR] [--package NAME] [--check]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *url == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	var pol *policy.Policy
	if *policyFile != "" {
		var err error
		if pol, err = policy.Load(*policyFile); err != nil {
			fmt.Fprintf(stderr, "typegen: %v\n", err)
			return exitUsage
		}
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "publication" })
	files, n, err := render(ctx, *url, *publication, explicit, pol, *pkg)
	if err != nil {
		fmt.Fprintf(stderr, "typegen: %v\n", err)
		return exitError
	}
	if *check {
		stale, err := differing(*out, files)
		if err != nil {
			fmt.Fprintf(stderr, "typegen: %v\n", err)
			return exitError
		}
		if len(stale) > 0 {
			fmt.Fprintf(stderr, "typegen: the bindings in %s no longer match the database schema: %s; run typegen without --check to regenerate them\n",
				*out, strings.Join(stale, ", "))
			return exitError
		}
		fmt.Fprintf(stdout, "typegen: the bindings in %s match the schema of %d tables\n", *out, n)
		return exitOK
	}
	if err := write(*out, files, n, stdout); err != nil {
		fmt.Fprintf(stderr, "typegen: %v\n", err)
		return exitError
	}
	return exitOK
}

// differing lists the files of out that --check finds stale: generated
// files that differ or are missing, and typegen's schema files for tables
// that are gone.
func differing(out string, files map[string][]byte) ([]string, error) {
	var stale []string
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(out, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			stale = append(stale, name+" (missing)")
		case err != nil:
			return nil, err
		case !bytes.Equal(got, want):
			stale = append(stale, name)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, schemaSuffix) || files[name] != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return nil, err
		}
		if bytes.Contains(data, []byte(schema.Generated)) {
			stale = append(stale, name+" (table gone)")
		}
	}
	slices.Sort(stale)
	return stale, nil
}

// render builds the bindings' files from the live schema, and says how
// many tables they describe. A publication named on the command line must
// exist; the default one may not, and then every user table is described.
func render(ctx context.Context, url, publication string, explicit bool, pol *policy.Policy, pkg string) (map[string][]byte, int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if explicit {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, publication).Scan(&exists); err != nil {
			return nil, 0, fmt.Errorf("look up publication %q: %w", publication, err)
		}
		if !exists {
			return nil, 0, fmt.Errorf("publication %q does not exist (capture setup creates it; leave --publication out to describe every user table)", publication)
		}
	}
	tables, err := schema.Read(ctx, conn, publication)
	if err != nil {
		return nil, 0, err
	}
	tables = schema.ApplyPolicy(tables, pol)
	if len(tables) == 0 {
		return nil, 0, errors.New("no tables found: the publication has none, or the database has no user tables")
	}
	goSrc, err := schema.Go(tables, pkg)
	if err != nil {
		return nil, 0, err
	}
	files := map[string][]byte{
		"events.ts": schema.TypeScript(tables),
		"events.go": goSrc,
	}
	for _, t := range tables {
		files[fileName(t)] = schema.JSONSchema(t)
	}
	return files, len(tables), nil
}

// write writes the files into out and removes stale schema files.
func write(out string, files map[string][]byte, tables int, stdout io.Writer) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}
	removed, err := removeStale(out, files)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "typegen: %d tables written to %s", tables, out)
	if len(removed) > 0 {
		fmt.Fprintf(stdout, "; removed %s", strings.Join(removed, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

// removeStale removes the schema files typegen wrote earlier for tables that
// are gone; a file without typegen's marker is never touched.
func removeStale(dir string, keep map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, schemaSuffix) || keep[name] != nil {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return removed, err
		}
		if !bytes.Contains(data, []byte(schema.Generated)) {
			continue
		}
		if err := os.Remove(path); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// fileName is SCHEMA.TABLE.schema.json, with every byte outside
// [A-Za-z0-9_-] percent-encoded so that any identifier makes one safe,
// unambiguous file name.
func fileName(t schema.Table) string {
	return escape(t.Schema) + "." + escape(t.Name) + schemaSuffix
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
