package change

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decode parses a Kinesis record's data: a version 1 record, or a version 2
// one, compressed or not. It fails with a wrapped ErrUnknownVersion for a
// version it does not know, and with a descriptive error for anything
// malformed; it never returns a partial record.
//
// Error texts say where and what kind of thing is wrong, never what the
// record holds: they are logged at the default level, and a record holds
// row values.
func Decode(data []byte) (*Record, error) {
	if bytes.HasPrefix(data, zstdMagic) {
		var err error
		if data, err = decompress(data); err != nil {
			return nil, err
		}
	}
	if isV2(data) {
		return decodeV2(data)
	}
	var body struct {
		Changes []Change `json:"changes"`
	}
	// Encode always starts with the version: one pass suffices. Anything
	// else (another producer's key order, another version) takes the
	// careful path below.
	if !bytes.HasPrefix(data, versionPrefix) {
		v, err := checkVersion(data)
		if err != nil {
			return nil, err
		}
		if v == Version2 {
			return decodeV2(data)
		}
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("decode change record: %w", withoutValues(err))
	}
	if len(body.Changes) == 0 {
		return nil, errors.New("decode change record: no changes")
	}
	for i := range body.Changes {
		if err := body.Changes[i].Validate(); err != nil {
			return nil, fmt.Errorf("decode change record: change %d: %w", i, err)
		}
	}
	return &Record{Changes: body.Changes, Version: Version}, nil
}

var versionPrefix = []byte(`{"v":` + strconv.Itoa(Version) + `,`)

// checkVersion reads only the version field, and returns it if known.
func checkVersion(data []byte) (int, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return 0, fmt.Errorf("decode change record: %w", withoutValues(err))
	}
	if head.V == nil {
		return 0, errors.New("decode change record: no version field")
	}
	if *head.V != Version && *head.V != Version2 {
		return 0, fmt.Errorf("decode change record: version %d: %w (this build reads versions %d and %d)", *head.V, ErrUnknownVersion, Version, Version2)
	}
	return *head.V, nil
}

// MarshalJSON writes the same form as AppendValue.
func (v Value) MarshalJSON() ([]byte, error) { return AppendValue(nil, v), nil }

// UnmarshalJSON reads a tuple slot written by AppendValue.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*v = Value{State: Null}
		return nil
	case len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b):
		// No escapes: the bytes between the quotes are the value.
		*v = Value{State: Text, Text: string(b[1 : len(b)-1])}
		return nil
	case bytes.Equal(b, []byte(`{"unchanged":true}`)):
		*v = Value{State: Unchanged}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Value{State: Text, Text: s}
		return nil
	case len(b) > 0 && b[0] == '{':
		var m struct {
			Unchanged bool   `json:"unchanged"`
			Omitted   bool   `json:"omitted"`
			Bytes     int    `json:"bytes"`
			Redacted  bool   `json:"redacted"`
			Changed   bool   `json:"changed"`
			S3        *Ref   `json:"s3"`
			SHA256    string `json:"sha256"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		switch {
		case m.Unchanged:
			*v = Value{State: Unchanged}
		case m.Omitted:
			*v = Value{State: Omitted, Size: m.Bytes}
		case m.Redacted:
			*v = Value{State: Redacted, Changed: m.Changed}
		case m.S3 != nil:
			if m.S3.Bucket == "" || m.S3.Key == "" || len(m.SHA256) != 64 || m.Bytes < 0 {
				return errors.New("tuple value: s3 reference without bucket, key, bytes or sha256")
			}
			r := *m.S3
			r.SHA256 = m.SHA256
			*v = Value{State: Stored, Size: m.Bytes, Ref: &r}
		default:
			return errors.New("tuple value: marker object neither unchanged nor omitted nor redacted nor an s3 reference")
		}
		return nil
	}
	return fmt.Errorf("tuple value: want a string, null or a marker object, got %d bytes of something else", len(b))
}

// errMalformed marks encoding/json type errors, rewritten by withoutValues.
var errMalformed = errors.New("malformed JSON")

// quotedChar is the input character encoding/json quotes in a syntax error
// ("invalid character 'x' looking for ...").
var quotedChar = regexp.MustCompile(`^invalid character ('\\''|'[^']*') `)

// withoutValues rewrites encoding/json's errors, which quote the offending
// character or number, into ones that give only its position and kind.
func withoutValues(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		msg := quotedChar.ReplaceAllString(syntax.Error(), "invalid character ")
		return fmt.Errorf("%s (at byte %d)", msg, syntax.Offset)
	case errors.As(err, &typ):
		kind, _, _ := strings.Cut(typ.Value, " ") // "number 1e99" -> "number"
		field := typ.Field
		if field == "" {
			field = "the record"
		}
		return fmt.Errorf("%w: %s at byte %d is a JSON %s, want %s", errMalformed, field, typ.Offset, kind, typ.Type)
	}
	return err
}
