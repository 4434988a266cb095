package event

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeListsEveryFamily keeps README.md's type mapping table and the
// code's families in step: every family has a row naming its event type and
// all its PostgreSQL types, and every row is a family (or the array and
// fallback rows).
func TestReadmeListsEveryFamily(t *testing.T) {
	doc, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "## Type mapping")
	if !ok {
		t.Fatal("README.md has no '## Type mapping' section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rows := map[string]string{} // event type → PostgreSQL type cell
	firstTick := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "PostgreSQL type" {
			continue
		}
		pgCell, typeCell := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		m := firstTick.FindStringSubmatch(typeCell)
		if m == nil {
			if strings.Contains(pgCell, "anything else") {
				rows["<unknown>"] = pgCell
				continue
			}
			t.Errorf("README row %q names no event type", line)
			continue
		}
		switch {
		case strings.HasPrefix(pgCell, "arrays"):
			rows["<array>"] = pgCell
		case strings.HasPrefix(pgCell, "anything else"):
			rows["<unknown>"] = pgCell
		default:
			rows[m[1]] = pgCell
		}
	}
	seen := map[string]bool{"<array>": true, "<unknown>": true}
	for _, f := range families {
		seen[f.Type] = true
		cell, ok := rows[f.Type]
		if !ok {
			t.Errorf("README's type mapping has no row for %q", f.Type)
			continue
		}
		names := strings.Split(cell, ", ")
		for _, pg := range f.PG {
			if !containsString(names, pg) {
				t.Errorf("README row for %q does not list PostgreSQL type %s (row: %q)", f.Type, pg, cell)
			}
		}
		if f.Kind != "" && !strings.HasPrefix(cell, string(f.Kind)+" types") {
			t.Errorf("README row for %q should read %q, got %q", f.Type, string(f.Kind)+" types", cell)
		}
	}
	for typ := range rows {
		if !seen[typ] {
			t.Errorf("README lists event type %q that the code does not produce", typ)
		}
	}
	for _, special := range []string{"<array>", "<unknown>"} {
		if _, ok := rows[special]; !ok {
			t.Errorf("README's type mapping lacks the %s row", special)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
