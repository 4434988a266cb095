package claimcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

// Resolve is the consumer's one call: it returns a DatabaseEvent's detail
// with every claim-check reference in newValues and oldValues replaced by
// the value it names, {"type":T,"value":TEXT}, keeping "valueEncoding":"text"
// where the reference had it. Each object is checked against the
// reference's size and SHA-256. A detail without references comes back as
// it was. The caller's role needs s3:GetObject on the bucket.
func Resolve(ctx context.Context, client Getter, detail []byte) ([]byte, error) {
	if !bytes.Contains(detail, []byte(`"s3":`)) {
		return detail, nil
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(detail, &d); err != nil {
		return nil, fmt.Errorf("claim check: detail: %w", err)
	}
	for _, side := range []string{"newValues", "oldValues"} {
		raw, ok := d[side]
		if !ok || bytes.Equal(raw, []byte("null")) {
			continue
		}
		var values map[string]json.RawMessage
		if err := json.Unmarshal(raw, &values); err != nil {
			return nil, fmt.Errorf("claim check: %s: %w", side, err)
		}
		changed := false
		for column, v := range values {
			var ref struct {
				Type          string      `json:"type"`
				S3            *change.Ref `json:"s3"`
				Bytes         int         `json:"bytes"`
				SHA256        string      `json:"sha256"`
				ValueEncoding string      `json:"valueEncoding,omitempty"`
			}
			if err := json.Unmarshal(v, &ref); err != nil || ref.S3 == nil {
				continue
			}
			r := *ref.S3
			r.SHA256 = ref.SHA256
			text, err := Fetch(ctx, client, r, ref.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", side, column, err)
			}
			resolved, err := json.Marshal(struct {
				Type          string `json:"type"`
				Value         string `json:"value"`
				ValueEncoding string `json:"valueEncoding,omitempty"`
			}{ref.Type, text, ref.ValueEncoding})
			if err != nil {
				return nil, err
			}
			values[column], changed = resolved, true
		}
		if changed {
			b, err := json.Marshal(values)
			if err != nil {
				return nil, err
			}
			d[side] = b
		}
	}
	return json.Marshal(d)
}

// Resolver is Resolve for a handler: it makes its S3 client from the
// default AWS configuration the first time an event has references, so a
// function that never gets one never loads it. Safe for concurrent use.
type Resolver struct {
	once   sync.Once
	client Getter
	err    error
}

// Resolve is the package's Resolve with the resolver's client.
func (r *Resolver) Resolve(ctx context.Context, detail []byte) ([]byte, error) {
	if !bytes.Contains(detail, []byte(`"s3":`)) {
		return detail, nil
	}
	r.once.Do(func() {
		cfg, err := sdkbody.LoadDefaultConfig(ctx)
		if err != nil {
			r.err = fmt.Errorf("claim check: AWS configuration: %w", err)
			return
		}
		r.client = Client(cfg)
	})
	if r.err != nil {
		return nil, r.err
	}
	return Resolve(ctx, r.client, detail)
}
