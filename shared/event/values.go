package event

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/jsontext"
)

// appendField appends one column's value object: {"type":T,"value":V}, or a
// marker object for NULL-free states that carry no value (unchanged TOAST,
// omitted by a size policy). A text form that cannot be rendered as its
// family's JSON (which capture's session settings should rule out) is kept
// verbatim as a string and flagged with "valueEncoding":"text", so nothing is
// lost and nothing is silently mis-typed. It returns where the type name ends
// so that the value can later be replaced by an omitted marker.
func appendField(dst []byte, ct columnType, v change.Value) (out []byte, typeEnd int) {
	dst = append(dst, `{"type":`...)
	dst = ct.appendTypeName(dst)
	typeEnd = len(dst)
	switch v.State {
	case change.Null:
		dst = append(dst, `,"value":null}`...)
	case change.Unchanged:
		dst = append(dst, `,"unchanged":true}`...)
	case change.Omitted:
		dst = appendOmitted(dst, v.Size)
	case change.Redacted:
		dst = append(dst, `,"redacted":true}`...)
	case change.Stored:
		dst = appendStored(dst, ct, v.Ref, v.Size)
	default:
		dst = append(dst, `,"value":`...)
		mark := len(dst)
		var ok bool
		if ct.array {
			var bounds string
			dst, bounds, ok = appendArray(dst, ct, v.Text)
			if ok && bounds != "" {
				dst = appendLowerBounds(dst, bounds)
			}
		} else {
			dst, ok = appendScalar(dst, ct.enc(), v.Text)
		}
		if !ok {
			dst = jsontext.AppendString(dst[:mark], v.Text)
			dst = append(dst, `,"valueEncoding":"text"`...)
		}
		dst = append(dst, '}')
	}
	return dst, typeEnd
}

// appendOmitted finishes a value object whose value was left out for size.
func appendOmitted(dst []byte, size int) []byte {
	dst = append(dst, `,"omitted":true,"bytes":`...)
	dst = strconv.AppendInt(dst, int64(size), 10)
	return append(dst, '}')
}

// appendStored finishes a value object whose value the claim check keeps
// in S3: {"s3":{"bucket","key"},"bytes","sha256"}. The object holds the
// text form; "valueEncoding":"text" says so where the value would otherwise
// be carried in another form (numbers, documents, dates, arrays...).
func appendStored(dst []byte, ct columnType, ref *change.Ref, size int) []byte {
	dst = append(dst, ',')
	dst = change.AppendRefMembers(dst, ref, size)
	if enc := ct.enc(); ct.array || (enc != encString && enc != encNumeric) {
		dst = append(dst, `,"valueEncoding":"text"`...)
	}
	return append(dst, '}')
}

// appendScalar appends the JSON value for one non-array text form. On false
// dst may hold a partial value; the caller truncates it.
func appendScalar(dst []byte, enc valueEncoding, s string) ([]byte, bool) {
	switch enc {
	case encInteger:
		if !jsontext.IsNumber(s) || strings.ContainsAny(s, ".eE") {
			return dst, false
		}
		return append(dst, s...), true
	case encFloat:
		switch {
		case jsontext.IsNumber(s):
			return append(dst, s...), true
		case s == "NaN" || s == "Infinity" || s == "-Infinity":
			return jsontext.AppendString(dst, s), true
		}
		return dst, false
	case encBoolean:
		switch s {
		case "t", "true":
			return append(dst, "true"...), true
		case "f", "false":
			return append(dst, "false"...), true
		}
		return dst, false
	case encJSON, encJSONText:
		// The document null would read as SQL NULL: it goes as text instead.
		if !embeddableJSON(s) || strings.TrimSpace(s) == "null" {
			return dst, false
		}
		// EventBridge delivers the detail re-serialized: a json document's
		// spacing and repeated keys would not survive, and its text is the
		// value. Such a document goes as its text.
		if enc == encJSONText && !exactWhenEmbedded(s) {
			return dst, false
		}
		return append(dst, s...), true
	case encBytes:
		return appendBytea(dst, s)
	case encDate:
		if isInfinity(s) {
			return jsontext.AppendString(dst, s), true
		}
		s, bc := cutBC(s)
		dst = append(dst, '"')
		dst, ok := appendDate(dst, s, bc)
		return append(dst, '"'), ok
	case encTime, encTimeTZ:
		dst = append(dst, '"')
		dst, ok := appendTime(dst, s, enc == encTimeTZ)
		return append(dst, '"'), ok
	case encTimestamp, encTimestampTZ:
		if isInfinity(s) {
			return jsontext.AppendString(dst, s), true
		}
		s, bc := cutBC(s)
		date, clock, found := strings.Cut(s, " ")
		if !found {
			return dst, false
		}
		dst = append(dst, '"')
		dst, ok := appendDate(dst, date, bc)
		if !ok {
			return dst, false
		}
		dst = append(dst, 'T')
		dst, ok = appendTime(dst, clock, enc == encTimestampTZ)
		return append(dst, '"'), ok
	default: // encString, encNumeric
		return jsontext.AppendString(dst, s), true
	}
}

func isInfinity(s string) bool { return s == "infinity" || s == "-infinity" }

func cutBC(s string) (string, bool) {
	if rest, ok := strings.CutSuffix(s, " BC"); ok {
		return rest, true
	}
	return s, false
}

// appendDate appends an ISO 8601 calendar date from PostgreSQL's ISO form
// ("2021-04-28", "0044-03-15" with bc). BC years become astronomical years
// (1 BC is 0000, 44 BC is -0043), which is what ISO 8601 prescribes.
func appendDate(dst []byte, s string, bc bool) ([]byte, bool) {
	y, rest, ok := strings.Cut(s, "-")
	if !ok || len(y) < 4 || !allDigits(y) || len(rest) != 5 || rest[2] != '-' || !allDigits(rest[:2]) || !allDigits(rest[3:]) {
		return dst, false
	}
	if !bc {
		return append(dst, s...), true
	}
	year, err := strconv.Atoi(y)
	if err != nil || year < 1 {
		return dst, false
	}
	astro := year - 1
	if astro > 0 {
		dst = append(dst, '-')
	}
	dst = appendPadded(dst, astro, 4)
	return append(append(dst, '-'), rest...), true
}

// appendTime appends HH:MM:SS.ffffff (always six fractional digits, like the
// event's commit timestamp) and, with tz, the offset as ±HH:MM[:SS].
func appendTime(dst []byte, s string, tz bool) ([]byte, bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' || !allDigits(s[0:2]) || !allDigits(s[3:5]) || !allDigits(s[6:8]) {
		return dst, false
	}
	dst = append(dst, s[:8]...)
	s = s[8:]
	frac := 0
	if len(s) > 0 && s[0] == '.' {
		for frac+1 < len(s) && isDigit(s[frac+1]) {
			frac++
		}
		if frac == 0 || frac > 6 {
			return dst, false
		}
		dst = append(dst, s[:frac+1]...)
		s = s[frac+1:]
	} else {
		dst = append(dst, '.')
	}
	for ; frac < 6; frac++ {
		dst = append(dst, '0')
	}
	if !tz {
		return dst, s == ""
	}
	// Offset: ±HH, ±HH:MM or ±HH:MM:SS.
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') || !allDigits(s[1:3]) {
		return dst, false
	}
	dst = append(dst, s[:3]...)
	s = s[3:]
	if s == "" {
		return append(dst, ":00"...), true
	}
	for s != "" {
		if len(s) < 3 || s[0] != ':' || !allDigits(s[1:3]) {
			return dst, false
		}
		dst = append(dst, s[:3]...)
		s = s[3:]
	}
	return dst, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func appendPadded(dst []byte, n, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(n), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

// appendBytea appends the base64 (standard alphabet, padded) of a bytea text
// form: hex ("\x0a0b", what capture's bytea_output=hex gives) or the older
// escape format.
func appendBytea(dst []byte, s string) ([]byte, bool) {
	var raw []byte
	if hexDigits, ok := strings.CutPrefix(s, `\x`); ok {
		if len(hexDigits)%2 != 0 {
			return dst, false
		}
		raw = make([]byte, len(hexDigits)/2)
		for i := range raw {
			hi, lo := unhex(hexDigits[2*i]), unhex(hexDigits[2*i+1])
			if hi < 0 || lo < 0 {
				return dst, false
			}
			raw[i] = byte(hi<<4 | lo)
		}
	} else {
		raw = make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c != '\\' {
				raw = append(raw, c)
				continue
			}
			switch {
			case i+1 < len(s) && s[i+1] == '\\':
				raw = append(raw, '\\')
				i++
			case i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]):
				raw = append(raw, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
				i += 3
			default:
				return dst, false
			}
		}
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, '"'), true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// appendArray appends a JSON array (nested for multi-dimensional arrays) from
// PostgreSQL's array text form. Elements are rendered like scalars of the
// element type; unquoted NULL is JSON null while a quoted "NULL" is the
// string. Explicit bounds ("[0:1]={1,2}") are accepted and dropped: JSON
// arrays start at zero.
// appendArray appends an array's JSON. PostgreSQL writes the dimensions of
// an array whose lower bounds are not all 1 before its elements
// ("[0:1]={7,8}"); bounds returns that decoration, checked, for
// appendLowerBounds.
func appendArray(dst []byte, ct columnType, s string) (out []byte, bounds string, ok bool) {
	p := arrayParser{s: s, delim: ct.delim, enc: ct.enc()}
	if strings.HasPrefix(s, "[") {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || !validBounds(s[:eq]) {
			return dst, "", false
		}
		bounds, p.i = s[:eq], eq+1
	}
	dst, ok = p.array(dst, 1)
	if !ok {
		return dst, "", false
	}
	p.skipSpace()
	return dst, bounds, p.i == len(p.s)
}

// validBounds checks a dimension decoration: "[lo:hi]" per dimension,
// integers.
func validBounds(s string) bool {
	for s != "" {
		end := strings.IndexByte(s, ']')
		if s[0] != '[' || end < 0 {
			return false
		}
		lo, hi, found := strings.Cut(s[1:end], ":")
		if _, err := strconv.Atoi(lo); err != nil || !found {
			return false
		}
		if _, err := strconv.Atoi(hi); err != nil {
			return false
		}
		s = s[end+1:]
	}
	return true
}

// appendLowerBounds writes "lowerBounds": each dimension's lower bound,
// outermost first, from a decoration validBounds accepted. With the value
// they give the array back exactly: PostgreSQL does not count '[0:1]={7,8}'
// equal to '{7,8}'.
func appendLowerBounds(dst []byte, bounds string) []byte {
	dst = append(dst, `,"lowerBounds":[`...)
	for i := 0; bounds != ""; i++ {
		lo, rest, _ := strings.Cut(bounds[1:], ":")
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, lo...)
		bounds = rest[strings.IndexByte(rest, ']')+1:]
	}
	return append(dst, ']')
}

type arrayParser struct {
	s       string
	i       int
	delim   byte
	enc     valueEncoding
	scratch []byte
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && isArraySpace(p.s[p.i]) {
		p.i++
	}
}

// isArraySpace is array_in's notion of white space (scanner_isspace).
func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) array(dst []byte, depth int) ([]byte, bool) {
	p.skipSpace()
	if depth > maxArrayDims || p.i >= len(p.s) || p.s[p.i] != '{' {
		return dst, false
	}
	p.i++
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return append(dst, ']'), true
	}
	for first := true; ; first = false {
		if !first {
			dst = append(dst, ',')
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return dst, false
		}
		var ok bool
		switch p.s[p.i] {
		case '{':
			dst, ok = p.array(dst, depth+1)
		case '"':
			dst, ok = p.quoted(dst)
		default:
			dst, ok = p.unquoted(dst)
		}
		if !ok {
			return dst, false
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return dst, false
		}
		switch c := p.s[p.i]; {
		case c == p.delim:
			p.i++
		case c == '}':
			p.i++
			return append(dst, ']'), true
		default:
			return dst, false
		}
	}
}

// quoted reads a double-quoted element; backslash escapes the next byte.
func (p *arrayParser) quoted(dst []byte) ([]byte, bool) {
	p.i++ // opening quote
	start := p.i
	escaped := false
	for p.i < len(p.s) && p.s[p.i] != '"' {
		if p.s[p.i] == '\\' {
			escaped = true
			p.i++
		}
		p.i++
	}
	if p.i >= len(p.s) {
		return dst, false
	}
	raw := p.s[start:p.i]
	p.i++ // closing quote
	if escaped {
		raw = p.unescape(raw)
	}
	return appendScalar(dst, p.enc, raw)
}

// unquoted reads an element up to the delimiter or the closing brace.
func (p *arrayParser) unquoted(dst []byte) ([]byte, bool) {
	start := p.i
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '\\' {
			escaped = true
			p.i += 2
			continue
		}
		if c == p.delim || c == '}' || c == '{' || c == '"' {
			break
		}
		p.i++
	}
	if p.i > len(p.s) {
		return dst, false
	}
	raw := p.s[start:p.i]
	// Trailing white space is not part of an unquoted element (leading white
	// space was skipped); an escaped space is, so trim before unescaping.
	end := len(raw)
	for end > 0 && isArraySpace(raw[end-1]) && !(end >= 2 && raw[end-2] == '\\') {
		end--
	}
	raw = raw[:end]
	if raw == "" {
		return dst, false
	}
	if !escaped && strings.EqualFold(raw, "NULL") {
		return append(dst, "null"...), true
	}
	if escaped {
		raw = p.unescape(raw)
	}
	return appendScalar(dst, p.enc, raw)
}

func (p *arrayParser) unescape(s string) string {
	p.scratch = p.scratch[:0]
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		p.scratch = append(p.scratch, s[i])
	}
	return string(p.scratch)
}
