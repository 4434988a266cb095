package event

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"

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

// exactWhenEmbedded reports whether a valid JSON document's text survives
// being parsed and written again, as EventBridge does with Detail: no
// whitespace between tokens and no object with a repeated key. (Numbers
// are kept as written.)
func exactWhenEmbedded(s string) bool {
	var compact bytes.Buffer
	if json.Compact(&compact, []byte(s)) != nil || compact.String() != s {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	// One set of keys per open object; nil for an open array.
	var open []map[string]bool
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				open = append(open, map[string]bool{})
				expectKey = true
				continue
			case '[':
				open = append(open, nil)
			case '}', ']':
				open = open[:len(open)-1]
			}
		case string:
			if expectKey {
				keys := open[len(open)-1]
				if keys[t] {
					return false
				}
				keys[t] = true
				expectKey = false
				continue
			}
		}
		// After a value inside an object, a key comes next.
		expectKey = len(open) > 0 && open[len(open)-1] != nil
	}
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
