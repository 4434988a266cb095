package event

import (
	"strconv"

	"github.com/walbridge/walbridge/shared/jsontext"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// maxEmbedDepth bounds the nesting of an embedded JSON document. PutEvents
// processes nested JSON only to a fixed depth (documented as 1000 or 1100
// levels); an event wraps a value in four levels of its own.
const maxEmbedDepth = 990

// embeddableJSON reports whether s is one valid JSON document that EventBridge
// accepts as part of Detail: well formed, nested at most maxEmbedDepth
// levels, and without integers outside the int64 range or numbers outside
// float64's (PutEvents documents the int64 bounds for JSON integers).
func embeddableJSON(s string) bool {
	sc := jsontext.Scanner{MaxDepth: maxEmbedDepth, CheckNumber: numberInRange}
	sc.Reset(s)
	sc.Skip()
	return sc.End()
}

// numberInRange: integers within int64, other numbers within float64.
func numberInRange(tok string, integer bool) bool {
	if integer {
		_, err := strconv.ParseInt(tok, 10, 64)
		return err == nil
	}
	_, err := strconv.ParseFloat(tok, 64)
	return err == nil
}
