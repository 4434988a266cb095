package schema

import (
	"strconv"
	"strings"
	"unicode"
)

// words splits a database identifier into words for a generated name:
// runs of letters and digits, with case changes kept inside a word.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// pascal joins words as PascalCase ("public", "order_items" → PublicOrderItems).
// Common initialisms stay upper case, as Go names them (id → ID).
func pascal(goStyle bool, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		for _, w := range words(p) {
			if goStyle {
				if up := strings.ToUpper(w); initialisms[up] {
					b.WriteString(up)
					continue
				}
			}
			r := []rune(w)
			r[0] = unicode.ToUpper(r[0])
			b.WriteString(string(r))
		}
	}
	name := b.String()
	if name == "" {
		return "X"
	}
	if r := []rune(name)[0]; !unicode.IsLetter(r) || !unicode.IsUpper(r) {
		name = "X" + name // Go exports only names starting with an upper-case letter
	}
	return name
}

// initialisms are the words golint writes in capitals.
var initialisms = map[string]bool{
	"ID": true, "URL": true, "URI": true, "UUID": true, "HTTP": true, "HTTPS": true, "IP": true,
	"JSON": true, "XML": true, "SQL": true, "API": true, "LSN": true, "TTL": true, "UTC": true,
}

// uniqueNames makes names distinct by numbering repeats (Name, Name2, ...),
// so two identifiers that differ only in punctuation still compile.
type uniqueNames map[string]bool

func (u uniqueNames) add(name string) string {
	out := name
	for i := 2; u[out]; i++ {
		out = name + strconv.Itoa(i)
	}
	u[out] = true
	return out
}

// tsIdentifier reports whether s can be written unquoted as a TypeScript
// property name.
func tsIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r == '$' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r)) {
			continue
		}
		return false
	}
	return true
}
