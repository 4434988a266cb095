package putevents

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// The ordered bus (EventBridge's Custom Event Bus, API EventBridgeV2): its
// PutEvents is Smithy rpcv2Cbor, a CBOR body POSTed to OrderedPath. The
// local bus serves it with what follows; fanout's client
// (fanout/orderedbus) writes the requests.
const (
	OrderedPath        = "/service/AWSEventsV2/operation/PutEvents"
	OrderedContentType = "application/cbor"
	MaxOrderedEntries  = 100
	maxOrderedID       = 128 // EventGroupId and DeduplicationId
	// DedupeWindow is how long the bus drops a repeat of a DeduplicationId
	// (within its event group), answering DEDUPLICATED.
	DedupeWindow = 5 * time.Minute
)

// OrderedEntry is one entry of an ordered bus's PutEvents: the classic
// entry's members (EventBusName unused: the request names the bus) and the
// SystemMetadata ids.
type OrderedEntry struct {
	Entry
	EventGroupID, DeduplicationID string
}

// OrderedResult is one entry of the answer: an EventId with SuccessCode
// PUBLISHED or DEDUPLICATED, or an ErrorCode.
type OrderedResult struct {
	EventID, SuccessCode, ErrorCode, ErrorMessage string
}

func serialization(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: fmt.Sprintf(format, args...)}
}

func invalidInput(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidInputException", Message: fmt.Sprintf(format, args...)}
}

// DecodeOrdered reads an ordered bus's PutEventsRequest: the bus ARN and the
// entries. A body that is not the documented shape (unknown members
// included) is a SerializationException; 0 or more than 100 entries, or ids
// over 128 bytes, an InvalidInputException, as the model's constraints say.
func DecodeOrdered(body []byte) (bus string, entries []OrderedEntry, err *Error) {
	v, derr := cbor.Decode(body)
	if derr != nil {
		return "", nil, serialization("the body is not CBOR: %v", derr)
	}
	top, ok := v.(cbor.Map)
	if !ok {
		return "", nil, serialization("the body is a CBOR %T, want a map", v)
	}
	for k := range top {
		if k != "EventBusArn" && k != "Entries" && k != "DeduplicationConfiguration" {
			return "", nil, serialization("unknown member %q of PutEventsRequest", k)
		}
	}
	bus, ok = cborString(top["EventBusArn"])
	if !ok || bus == "" {
		return "", nil, invalidInput("EventBusArn is required")
	}
	list, ok := top["Entries"].(cbor.List)
	if !ok {
		return "", nil, invalidInput("Entries is required")
	}
	if len(list) < 1 || len(list) > MaxOrderedEntries {
		return "", nil, invalidInput("Entries has %d members, want 1 to %d", len(list), MaxOrderedEntries)
	}
	for i, item := range list {
		e, err := decodeOrderedEntry(item)
		if err != nil {
			err.Message = fmt.Sprintf("Entries[%d]: %s", i, err.Message)
			return "", nil, err
		}
		entries = append(entries, e)
	}
	return bus, entries, nil
}

func decodeOrderedEntry(v cbor.Value) (OrderedEntry, *Error) {
	var e OrderedEntry
	m, ok := v.(cbor.Map)
	if !ok {
		return e, serialization("an entry is a CBOR %T, want a map", v)
	}
	str := func(name string) (*string, *Error) {
		v, present := m[name]
		if !present {
			return nil, nil
		}
		s, ok := cborString(v)
		if !ok {
			return nil, serialization("%s is a CBOR %T, want a text string", name, v)
		}
		return &s, nil
	}
	var err *Error
	for name := range m {
		switch name {
		case "Source":
			e.Source, err = str(name)
		case "DetailType":
			e.DetailType, err = str(name)
		case "Detail":
			e.Detail, err = str(name)
		case "Resources":
			list, ok := m[name].(cbor.List)
			if !ok {
				return e, serialization("Resources is not a list")
			}
			for _, r := range list {
				s, ok := cborString(r)
				if !ok {
					return e, serialization("a resource is a CBOR %T, want a text string", r)
				}
				e.Resources = append(e.Resources, s)
			}
		case "Time":
			tag, ok := m[name].(*cbor.Tag)
			if !ok || tag.ID != 1 {
				return e, serialization("Time is not an epoch-seconds timestamp (tag 1)")
			}
			f, ok := cborNumber(tag.Value)
			if !ok {
				return e, serialization("Time's value is a CBOR %T, want a number", tag.Value)
			}
			e.Time = &f
		case "SystemMetadata":
			sm, ok := m[name].(cbor.Map)
			if !ok {
				return e, serialization("SystemMetadata is not a map")
			}
			for k, v := range sm {
				s, ok := cborString(v)
				if !ok {
					return e, serialization("SystemMetadata.%s is a CBOR %T, want a text string", k, v)
				}
				switch k {
				case "EventGroupId":
					e.EventGroupID = s
				case "DeduplicationId":
					e.DeduplicationID = s
				default:
					return e, serialization("unknown member %q of SystemMetadata", k)
				}
				if len(s) < 1 || len(s) > maxOrderedID {
					return e, invalidInput("SystemMetadata.%s has %d bytes, want 1 to %d", k, len(s), maxOrderedID)
				}
			}
			if e.DeduplicationID != "" && strings.TrimSpace(e.DeduplicationID) == "" {
				return e, invalidInput("SystemMetadata.DeduplicationId is all white space")
			}
		default:
			return e, serialization("unknown member %q of PutEventsRequestEntry", name)
		}
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

func cborString(v cbor.Value) (string, bool) {
	s, ok := v.(cbor.String)
	return string(s), ok
}

func cborNumber(v cbor.Value) (float64, bool) {
	switch n := v.(type) {
	case cbor.Float32:
		return float64(n), true
	case cbor.Float64:
		return float64(n), !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0)
	case cbor.Uint:
		return float64(n), true
	case cbor.NegInt:
		return -float64(n), true
	}
	return 0, false
}

// EncodeOrderedResponse writes the PutEventsResponse for results, one per
// entry in request order.
func EncodeOrderedResponse(results []OrderedResult) []byte {
	list := make(cbor.List, len(results))
	failed := 0
	for i, r := range results {
		m := cbor.Map{}
		for k, v := range map[string]string{"EventId": r.EventID, "SuccessCode": r.SuccessCode, "ErrorCode": r.ErrorCode, "ErrorMessage": r.ErrorMessage} {
			if v != "" {
				m[k] = cbor.String(v)
			}
		}
		if r.ErrorCode != "" {
			failed++
		}
		list[i] = m
	}
	return cbor.Encode(cbor.Map{"FailedEntryCount": cbor.Uint(failed), "Entries": list})
}

// EncodeOrderedError writes an error answer: rpcv2Cbor names the error
// shape in "__type".
func EncodeOrderedError(e *Error) []byte {
	return cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.eventbridgev2#" + e.Code), "message": cbor.String(e.Message)})
}

// Deduper remembers the DeduplicationIds the bus accepted, per event group,
// for DedupeWindow. The zero value is ready; Now defaults to time.Now.
type Deduper struct {
	Now func() time.Time

	mu   sync.Mutex
	seen map[[2]string]time.Time
}

// Repeat reports whether the id was accepted in its group within the
// window; if not, it remembers it as accepted now. An entry without an id
// is never a repeat.
func (d *Deduper) Repeat(group, id string) bool {
	if id == "" {
		return false
	}
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[[2]string]time.Time{}
	}
	key := [2]string{group, id}
	if at, ok := d.seen[key]; ok && now.Sub(at) < DedupeWindow {
		return true
	}
	d.seen[key] = now
	if len(d.seen)%1024 == 0 { // forget what the window has passed
		for k, at := range d.seen {
			if now.Sub(at) >= DedupeWindow {
				delete(d.seen, k)
			}
		}
	}
	return false
}
