package event

import (
	"strconv"
	"unicode/utf8"
)

// isJSONNumber reports whether s is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

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
	sc := jsonScanner{s: s}
	sc.skipSpace()
	if !sc.value(0) {
		return false
	}
	sc.skipSpace()
	return sc.i == len(s)
}

type jsonScanner struct {
	s string
	i int
}

func (sc *jsonScanner) skipSpace() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *jsonScanner) value(depth int) bool {
	if sc.i >= len(sc.s) {
		return false
	}
	switch c := sc.s[sc.i]; {
	case c == '{':
		return sc.object(depth + 1)
	case c == '[':
		return sc.array(depth + 1)
	case c == '"':
		return sc.str()
	case c == '-' || isDigit(c):
		return sc.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(sc.s)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
				sc.i += len(lit)
				return true
			}
		}
		return false
	}
}

func (sc *jsonScanner) object(depth int) bool {
	if depth > maxEmbedDepth {
		return false
	}
	sc.i++ // {
	sc.skipSpace()
	if sc.i < len(sc.s) && sc.s[sc.i] == '}' {
		sc.i++
		return true
	}
	for {
		sc.skipSpace()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '"' || !sc.str() {
			return false
		}
		sc.skipSpace()
		if sc.i >= len(sc.s) || sc.s[sc.i] != ':' {
			return false
		}
		sc.i++
		sc.skipSpace()
		if !sc.value(depth) {
			return false
		}
		sc.skipSpace()
		if sc.i >= len(sc.s) {
			return false
		}
		switch sc.s[sc.i] {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return true
		default:
			return false
		}
	}
}

func (sc *jsonScanner) array(depth int) bool {
	if depth > maxEmbedDepth {
		return false
	}
	sc.i++ // [
	sc.skipSpace()
	if sc.i < len(sc.s) && sc.s[sc.i] == ']' {
		sc.i++
		return true
	}
	for {
		sc.skipSpace()
		if !sc.value(depth) {
			return false
		}
		sc.skipSpace()
		if sc.i >= len(sc.s) {
			return false
		}
		switch sc.s[sc.i] {
		case ',':
			sc.i++
		case ']':
			sc.i++
			return true
		default:
			return false
		}
	}
}

func (sc *jsonScanner) str() bool {
	sc.i++ // opening quote
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			sc.i++
			return true
		case c == '\\':
			sc.i++
			if sc.i >= len(sc.s) {
				return false
			}
			switch sc.s[sc.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				sc.i++
			case 'u':
				if len(sc.s)-sc.i < 5 {
					return false
				}
				for _, h := range []byte(sc.s[sc.i+1 : sc.i+5]) {
					if !isHex(h) {
						return false
					}
				}
				sc.i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			sc.i++
		default:
			r, size := utf8.DecodeRuneInString(sc.s[sc.i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			sc.i += size
		}
	}
	return false
}

func (sc *jsonScanner) number() bool {
	start := sc.i
	integer := true
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		if c == '.' || c == 'e' || c == 'E' {
			integer = false
		} else if !(isDigit(c) || c == '-' || c == '+') {
			break
		}
		sc.i++
	}
	n := sc.s[start:sc.i]
	if !isJSONNumber(n) {
		return false
	}
	if integer {
		_, err := strconv.ParseInt(n, 10, 64)
		return err == nil
	}
	_, err := strconv.ParseFloat(n, 64)
	return err == nil // out of range numbers are not embeddable
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
