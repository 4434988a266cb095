// Package jsontext writes and reads JSON text by hand, for the few places
// where encoding/json's reflection and copies cost too much: capture's change
// records and PutRecords bodies and answers, fanout's events, and the
// in-test Kinesis endpoint. AppendString is the one JSON string encoder;
// Scanner is the one reader, slicing strings out of its input instead of
// copying them and checking the grammar as it goes.
package jsontext

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// in encoding/json.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most text needs no escaping: pass it eight bytes at a time.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plain8 reports whether none of w's eight bytes needs escaping or UTF-8
// checking: each is printable ASCII other than '"' and '\'.
func plain8(w string) bool {
	x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// A byte below 0x20; a byte equal to '"' or '\' (a zero after the
	// XOR); a byte of 0x80 or more (its own high bit). The classic
	// has-less-than and has-zero tests: exact as to whether any byte does.
	below := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (below|(q-ones)&^q|(bs-ones)&^bs|x)&highs == 0
}

// DefaultMaxDepth bounds the nesting Skip accepts when Scanner.MaxDepth is
// zero.
const DefaultMaxDepth = 10000

// Scanner reads one JSON text. After the first error every step is a no-op
// and Err reports it (with its byte offset, never the input's bytes).
type Scanner struct {
	// MaxDepth bounds the nesting of objects and arrays that Skip accepts
	// (DefaultMaxDepth when zero).
	MaxDepth int
	// CheckNumber, when set, is asked about every number Skip meets (its
	// token, and whether it is an integer); false makes the value invalid.
	CheckNumber func(tok string, integer bool) bool
	// Lax skips the check of string contents (control characters, UTF-8)
	// on the fast path, for input that a JSON encoder wrote and that is
	// checked again later (base64 record data, which decoding checks).
	Lax bool

	s   string
	i   int
	err error
}

// Reset starts the scanner on s, keeping its settings.
func (sc *Scanner) Reset(s string) {
	sc.s, sc.i, sc.err = s, 0, nil
}

// Err is the first error, if any.
func (sc *Scanner) Err() error { return sc.err }

// Fail records an error at the current offset (a caller's own check), unless
// there is one already.
func (sc *Scanner) Fail(what string) {
	if sc.err == nil {
		sc.err = fmt.Errorf("JSON at byte %d: %s", sc.i, what)
	}
}

// SkipSpace steps over white space.
func (sc *Scanner) SkipSpace() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// Next consumes c, after white space, if it is the next byte.
func (sc *Scanner) Next(c byte) bool {
	sc.SkipSpace()
	if sc.err == nil && sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// Expect is Next, failing when c is not next.
func (sc *Scanner) Expect(c byte) {
	if !sc.Next(c) {
		sc.Fail(fmt.Sprintf("want %q", c))
	}
}

// Peek is the next byte after white space (0 at the end or after an error).
func (sc *Scanner) Peek() byte {
	sc.SkipSpace()
	if sc.err != nil || sc.i >= len(sc.s) {
		return 0
	}
	return sc.s[sc.i]
}

// End reports whether the text is read to its end without an error (white
// space may follow the value).
func (sc *Scanner) End() bool {
	sc.SkipSpace()
	return sc.err == nil && sc.i == len(sc.s)
}

// Object reads {"key": value, ...}; member is called with each key,
// unescaped, and must read the value.
func (sc *Scanner) Object(member func(key string)) {
	sc.Expect('{')
	if sc.Next('}') {
		return
	}
	for sc.err == nil {
		key := sc.Text()
		sc.Expect(':')
		member(key)
		if !sc.Next(',') {
			sc.Expect('}')
			return
		}
	}
}

// Array reads [value, ...]; elem must read one value.
func (sc *Scanner) Array(elem func()) {
	sc.Expect('[')
	if sc.Next(']') {
		return
	}
	for sc.err == nil {
		elem()
		if !sc.Next(',') {
			sc.Expect(']')
			return
		}
	}
}

// String reads a string and returns its text between the quotes, still
// escaped when escaped is true (Unquote undoes that). Escapes, control
// characters and UTF-8 are checked.
func (sc *Scanner) String() (raw string, escaped bool) {
	if !sc.Next('"') {
		sc.Fail("want a string")
		return "", false
	}
	start := sc.i
	// The usual string has no escapes: find its end with IndexByte and check
	// it in one pass. (The in-test Kinesis endpoint reads megabytes of
	// base64 this way.)
	if q := strings.IndexByte(sc.s[start:], '"'); q >= 0 {
		if span := sc.s[start : start+q]; strings.IndexByte(span, '\\') < 0 {
			if !sc.Lax && !plain(span) {
				sc.Fail("control character or invalid UTF-8 in a string")
				return "", false
			}
			sc.i = start + q + 1
			return span, false
		}
	}
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			raw = sc.s[start:sc.i]
			sc.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			sc.i++
			if sc.i >= len(sc.s) {
				break
			}
			switch sc.s[sc.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				sc.i++
			case 'u':
				if len(sc.s)-sc.i < 5 || !isHex4(sc.s[sc.i+1:sc.i+5]) {
					sc.Fail("bad \\u escape")
					return "", false
				}
				sc.i += 5
			default:
				sc.Fail("bad escape")
				return "", false
			}
		case c < 0x20:
			sc.Fail("control character in a string")
			return "", false
		case c < utf8.RuneSelf:
			sc.i++
		default:
			r, size := utf8.DecodeRuneInString(sc.s[sc.i:])
			if r == utf8.RuneError && size == 1 {
				sc.Fail("invalid UTF-8 in a string")
				return "", false
			}
			sc.i += size
		}
	}
	sc.Fail("unterminated string")
	return "", false
}

// Text reads a string and returns it unescaped.
func (sc *Scanner) Text() string {
	raw, escaped := sc.String()
	if !escaped || sc.err != nil {
		return raw
	}
	s, ok := Unquote(raw)
	if !ok {
		sc.Fail("bad string")
	}
	return s
}

// Unquote undoes the escapes of a string's raw text (as String returns it).
func Unquote(raw string) (string, bool) {
	var s string
	if err := json.Unmarshal([]byte(`"`+raw+`"`), &s); err != nil {
		return "", false
	}
	return s, true
}

// Number reads a number in JSON's grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and says whether it is an
// integer (no fraction, no exponent).
func (sc *Scanner) Number() (tok string, integer bool) {
	sc.SkipSpace()
	if sc.err != nil {
		return "", false
	}
	start, j := sc.i, sc.i
	s := sc.s
	if j < len(s) && s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case j < len(s) && isDigit(s[j]):
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	default:
		sc.Fail("want a number")
		return "", false
	}
	integer = true
	if j < len(s) && s[j] == '.' {
		integer = false
		j++
		if j == len(s) || !isDigit(s[j]) {
			sc.Fail("bad number")
			return "", false
		}
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		integer = false
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j == len(s) || !isDigit(s[j]) {
			sc.Fail("bad number")
			return "", false
		}
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	sc.i = j
	return s[start:j], integer
}

// Skip reads one value of any kind and checks it: the grammar, the depth
// limit and, through CheckNumber, its numbers.
func (sc *Scanner) Skip() { sc.skip(0) }

func (sc *Scanner) skip(depth int) {
	sc.SkipSpace()
	if sc.err != nil {
		return
	}
	if sc.i >= len(sc.s) {
		sc.Fail("want a value")
		return
	}
	max := sc.MaxDepth
	if max == 0 {
		max = DefaultMaxDepth
	}
	switch c := sc.s[sc.i]; {
	case c == '{' || c == '[':
		if depth+1 > max {
			sc.Fail("nested too deep")
			return
		}
		if c == '{' {
			sc.Object(func(string) { sc.skip(depth + 1) })
		} else {
			sc.Array(func() { sc.skip(depth + 1) })
		}
	case c == '"':
		sc.String()
	case c == '-' || isDigit(c):
		tok, integer := sc.Number()
		if sc.err == nil && sc.CheckNumber != nil && !sc.CheckNumber(tok, integer) {
			sc.Fail("number out of range")
		}
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(sc.s)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
				sc.i += len(lit)
				return
			}
		}
		sc.Fail("want a value")
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// plain reports a string body without control characters, in valid UTF-8.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	return utf8.ValidString(s)
}

func isHex4(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// IsNumber reports whether s is exactly one number in JSON's grammar.
func IsNumber(s string) bool {
	sc := Scanner{s: s}
	sc.Number()
	return sc.err == nil && sc.i == len(s)
}
