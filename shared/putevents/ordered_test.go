package putevents

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

func orderedBody(entries ...cbor.Map) []byte {
	list := cbor.List{}
	for _, e := range entries {
		list = append(list, e)
	}
	return cbor.Encode(cbor.Map{"EventBusArn": cbor.String("arn:aws:events:us-east-1:000000000000:event-busv2/b/abcdefghijklmnopqrstuvwxy"), "Entries": list})
}

func TestDecodeOrdered(t *testing.T) {
	good := cbor.Map{"Source": cbor.String("s"), "DetailType": cbor.String("d"), "Detail": cbor.String(`{"a":1}`),
		"Resources": cbor.List{cbor.String("r")}, "Time": &cbor.Tag{ID: 1, Value: cbor.Float64(1700000000.5)},
		"SystemMetadata": cbor.Map{"EventGroupId": cbor.String("g"), "DeduplicationId": cbor.String("0/1:0")}}
	bus, entries, err := DecodeOrdered(orderedBody(good))
	if err != nil || !strings.Contains(bus, "event-busv2/b/") || len(entries) != 1 {
		t.Fatalf("DecodeOrdered = %q, %+v, %v", bus, entries, err)
	}
	e := entries[0]
	if *e.Source != "s" || *e.DetailType != "d" || *e.Detail != `{"a":1}` || e.Resources[0] != "r" || *e.Time != 1700000000.5 ||
		e.EventGroupID != "g" || e.DeduplicationID != "0/1:0" {
		t.Errorf("entry %+v", e)
	}
	with := func(k string, v cbor.Value) cbor.Map {
		m := cbor.Map{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	many := make([]cbor.Map, 101)
	for i := range many {
		many[i] = good
	}
	for _, tc := range []struct {
		name string
		body []byte
		code string
	}{
		{"not CBOR", []byte{0xff}, "SerializationException"},
		{"no entries", orderedBody(), "InvalidInputException"},
		{"101 entries", orderedBody(many...), "InvalidInputException"},
		{"unknown member", orderedBody(with("Sauce", cbor.String("x"))), "SerializationException"},
		{"untagged time", orderedBody(with("Time", cbor.Float64(1))), "SerializationException"},
		{"group id too long", orderedBody(with("SystemMetadata", cbor.Map{"EventGroupId": cbor.String(strings.Repeat("g", 129))})), "InvalidInputException"},
		{"blank deduplication id", orderedBody(with("SystemMetadata", cbor.Map{"DeduplicationId": cbor.String("  ")})), "InvalidInputException"},
		{"source not text", orderedBody(with("Source", cbor.Uint(1))), "SerializationException"},
	} {
		if _, _, err := DecodeOrdered(tc.body); err == nil || err.Code != tc.code || err.Status != 400 {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestEncodeOrderedResponse(t *testing.T) {
	v, err := cbor.Decode(EncodeOrderedResponse([]OrderedResult{{EventID: "a", SuccessCode: "PUBLISHED"}, {ErrorCode: "InternalFailure", ErrorMessage: "m"}}))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(cbor.Map)
	if m["FailedEntryCount"] != cbor.Uint(1) || len(m["Entries"].(cbor.List)) != 2 || m["Entries"].(cbor.List)[1].(cbor.Map)["ErrorCode"] != cbor.String("InternalFailure") {
		t.Errorf("response %#v", m)
	}
	v, _ = cbor.Decode(EncodeOrderedError(&Error{Code: "ThrottlingException", Message: "slow"}))
	if v.(cbor.Map)["__type"] != cbor.String("com.amazonaws.eventbridgev2#ThrottlingException") {
		t.Errorf("error %#v", v)
	}
}

func TestDeduper(t *testing.T) {
	now := time.Unix(1000, 0)
	d := &Deduper{Now: func() time.Time { return now }}
	if d.Repeat("g", "1") || !d.Repeat("g", "1") {
		t.Fatal("a repeat within the window is not one")
	}
	if d.Repeat("h", "1") || d.Repeat("g", "") || d.Repeat("g", "") {
		t.Error("another group's id, or no id, counted as a repeat")
	}
	now = now.Add(DedupeWindow - time.Second)
	if !d.Repeat("g", "1") {
		t.Error("forgotten before the window ended")
	}
	now = now.Add(2 * time.Second)
	if d.Repeat("g", "1") {
		t.Error("still a repeat after the window")
	}
}
