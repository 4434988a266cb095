package policy

import (
	"fmt"
	"strings"
)

// SensitiveWords make a column name look like it holds a secret or
// personal data (README.md lists them): anywhere in the name, ignoring case
// and the separators "_", "-" and space ("api_key" has "apikey").
var SensitiveWords = []string{
	"password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey",
	"socialsecurity", "creditcard", "cardnumber", "taxid", "passport",
}

// SensitiveParts are short words that count only as a whole part of the
// name between separators ("ssn", but not the ssn in "classname").
var SensitiveParts = []string{"pwd", "ssn", "cvv", "cvc", "iban", "pin", "otp", "salt"}

// LooksSensitive reports whether a column name looks like it holds a secret
// or personal data, and which word of the lists it matched.
func LooksSensitive(column string) (word string, ok bool) {
	lower := strings.ToLower(column)
	joined := strings.NewReplacer("_", "", "-", "", " ", "").Replace(lower)
	for _, w := range SensitiveWords {
		if strings.Contains(joined, w) {
			return w, true
		}
	}
	parts := strings.FieldsFunc(lower, func(r rune) bool { return r == '_' || r == '-' || r == ' ' })
	for _, part := range parts {
		for _, w := range SensitiveParts {
			if part == w {
				return w, true
			}
		}
	}
	return "", false
}

// Uncovered is a published column that looks sensitive and that no rule of
// the policy covers.
type Uncovered struct {
	Schema, Table, Column, Word string
}

// Name is schema.table.column.
func (u Uncovered) Name() string { return u.Schema + "." + u.Table + "." + u.Column }

// Suggestion is the policy rule that would cover it.
func (u Uncovered) Suggestion() string {
	return fmt.Sprintf("columns: [{match: %s, action: exclude}]", u.Name())
}

// Uncovered lists the columns (schema, table, column triples) that look
// sensitive and that p neither covers with a column rule nor skips with a
// table rule.
func (p *Policy) Uncovered(columns [][3]string) []Uncovered {
	var out []Uncovered
	for _, c := range columns {
		word, ok := LooksSensitive(c[2])
		if !ok {
			continue
		}
		if _, covered := p.Column(c[0], c[1], c[2]); covered {
			continue
		}
		if _, skipped := p.Table(c[0], c[1]); skipped {
			continue
		}
		out = append(out, Uncovered{Schema: c[0], Table: c[1], Column: c[2], Word: word})
	}
	return out
}
