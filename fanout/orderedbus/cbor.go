package orderedbus

import (
	"errors"
	"fmt"

	"github.com/aws/smithy-go/encoding/cbor"
)

// encodeRequest builds the PutEventsRequest shape. Optional members are
// left out when empty; Time is an epoch-seconds timestamp (tag 1) with
// millisecond precision, as rpcv2Cbor carries timestamps.
func encodeRequest(bus string, entries []Entry) []byte {
	list := make(cbor.List, len(entries))
	for i, e := range entries {
		m := cbor.Map{
			"Source":     cbor.String(e.Source),
			"DetailType": cbor.String(e.DetailType),
		}
		if e.Detail != "" {
			m["Detail"] = cbor.String(e.Detail)
		}
		if len(e.Resources) > 0 {
			rs := make(cbor.List, len(e.Resources))
			for j, r := range e.Resources {
				rs[j] = cbor.String(r)
			}
			m["Resources"] = rs
		}
		if !e.Time.IsZero() {
			m["Time"] = &cbor.Tag{ID: 1, Value: cbor.Float64(float64(e.Time.UnixMilli()) / 1e3)}
		}
		if e.EventGroupID != "" || e.DeduplicationID != "" {
			sm := cbor.Map{}
			if e.EventGroupID != "" {
				sm["EventGroupId"] = cbor.String(e.EventGroupID)
			}
			if e.DeduplicationID != "" {
				sm["DeduplicationId"] = cbor.String(e.DeduplicationID)
			}
			m["SystemMetadata"] = sm
		}
		list[i] = m
	}
	return cbor.Encode(cbor.Map{"EventBusArn": cbor.String(bus), "Entries": list})
}

func decodeMap(raw []byte) (cbor.Map, error) {
	v, err := cbor.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("decode CBOR answer: %w", err)
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return nil, fmt.Errorf("answer is a CBOR %T, want a map", v)
	}
	return m, nil
}

// decodeOutput reads the PutEventsResponse shape; unknown members are
// ignored, as Smithy clients must.
func decodeOutput(raw []byte) (*Output, error) {
	m, err := decodeMap(raw)
	if err != nil {
		return nil, err
	}
	out := &Output{}
	if v, ok := m["FailedEntryCount"]; ok {
		n, err := cbor.AsInt64(v)
		if err != nil {
			return nil, fmt.Errorf("FailedEntryCount: %w", err)
		}
		out.FailedEntryCount = int(n)
	}
	if v, ok := m["Entries"]; ok {
		list, ok := v.(cbor.List)
		if !ok {
			return nil, errors.New("entries is not a list")
		}
		for i, ev := range list {
			em, ok := ev.(cbor.Map)
			if !ok {
				return nil, fmt.Errorf("entry %d is not a map", i)
			}
			out.Entries = append(out.Entries, Result{EventID: str(em["EventId"]), SequenceNumber: str(em["SequenceNumber"]),
				SuccessCode: str(em["SuccessCode"]), ErrorCode: str(em["ErrorCode"]), ErrorMessage: str(em["ErrorMessage"])})
		}
	}
	return out, nil
}

func str(v cbor.Value) string {
	if s, ok := v.(cbor.String); ok {
		return string(s)
	}
	return ""
}
