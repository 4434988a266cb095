package change

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Decode parses a Kinesis record's data. It fails with a wrapped
// ErrUnknownVersion for a version it does not know, and with a descriptive
// error for anything malformed; it never returns a partial record.
func Decode(data []byte) (*Record, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("decode change record: %w", err)
	}
	if head.V == nil {
		return nil, errors.New("decode change record: no version field")
	}
	if *head.V != Version {
		return nil, fmt.Errorf("decode change record: version %d: %w (this build reads version %d)", *head.V, ErrUnknownVersion, Version)
	}
	var body struct {
		Changes []Change `json:"changes"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("decode change record: %w", err)
	}
	if len(body.Changes) == 0 {
		return nil, errors.New("decode change record: no changes")
	}
	for i := range body.Changes {
		if err := body.Changes[i].Validate(); err != nil {
			return nil, fmt.Errorf("decode change record: change %d: %w", i, err)
		}
	}
	return &Record{Changes: body.Changes}, nil
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
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Value{State: Text, Text: s}
		return nil
	case len(b) > 0 && b[0] == '{':
		var m struct {
			Unchanged bool `json:"unchanged"`
			Omitted   bool `json:"omitted"`
			Bytes     int  `json:"bytes"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		switch {
		case m.Unchanged:
			*v = Value{State: Unchanged}
		case m.Omitted:
			*v = Value{State: Omitted, Size: m.Bytes}
		default:
			return fmt.Errorf("tuple value %s: neither unchanged nor omitted", b)
		}
		return nil
	}
	return fmt.Errorf("tuple value %.40s: want a string, null or a marker object", b)
}

// MarshalJSON writes the wire form; it exists so that tests and tools can use
// encoding/json on a Record.
func (r *Record) MarshalJSON() ([]byte, error) { return Encode(nil, r), nil }
