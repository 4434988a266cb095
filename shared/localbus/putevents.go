package localbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/walbridge/walbridge/shared/putevents"
)

const contentTypeJSON11 = "application/x-amz-json-1.1"

// Event is an event as EventBridge delivers it to a rule's targets. Time is
// the entry's Time, or when PutEvents received it, to the second.
type Event = putevents.Delivered

// putEvents handles AWSEvents.PutEvents with the rules of package
// putevents.
func (b *Bus) putEvents(w http.ResponseWriter, body []byte) {
	var in putevents.Request
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: err.Error()})
		return
	}
	hooks := b.opts.Hooks
	err := putevents.CheckRequest(in.Entries, b.opts.MaxRequestBytes)
	if hooks.Request != nil {
		if fault := hooks.Request(in.Entries, err); err == nil {
			err = fault
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	out := struct {
		Entries          []putevents.ResultEntry
		FailedEntryCount int
	}{Entries: make([]putevents.ResultEntry, len(in.Entries))}
	for i, e := range in.Entries {
		code, msg := putevents.CheckEntry(e)
		if hooks.Entry != nil {
			code, msg = hooks.Entry(e, code, msg)
		}
		if code != "" {
			out.Entries[i] = putevents.ResultEntry{ErrorCode: code, ErrorMessage: msg}
			out.FailedEntryCount++
			continue
		}
		ev := putevents.Deliver(e, putevents.NewEventID(), b.opts.Region, Account, now)
		out.Entries[i] = putevents.ResultEntry{EventID: ev.ID}
		if hooks.Accepted != nil {
			hooks.Accepted(e, ev.ID)
		}
		b.route(Record{Bus: busName(aws.ToString(e.EventBusName)), Event: ev})
	}
	writeJSON(w, http.StatusOK, out)
}

// putOrderedEvents handles an ordered bus's PutEvents (rpcv2Cbor): entries
// are checked as the classic bus checks them, a DeduplicationId accepted in
// its group within putevents.DedupeWindow is answered DEDUPLICATED and not
// delivered again, and the rest go to the bus's subscribers (and dev
// rules) in request order, which keeps each group in order.
func (b *Bus) putOrderedEvents(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); r.Method != http.MethodPost || ct != putevents.OrderedContentType {
		writeOrderedError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "SerializationException", Message: fmt.Sprintf("expected a POST of %s, got %s %q", putevents.OrderedContentType, r.Method, ct)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(8*b.opts.MaxRequestBytes)))
	if err != nil {
		writeOrderedError(w, &putevents.Error{Status: http.StatusBadRequest, Code: "InvalidInputException", Message: "the request is over the size limit"})
		return
	}
	arn, entries, perr := putevents.DecodeOrdered(body)
	if perr != nil {
		writeOrderedError(w, perr)
		return
	}
	bus := orderedBusName(arn)
	now := time.Now().UTC()
	results := make([]putevents.OrderedResult, len(entries))
	for i, e := range entries {
		if code, msg := putevents.CheckEntry(e.Entry); code != "" {
			results[i] = putevents.OrderedResult{ErrorCode: code, ErrorMessage: msg}
			continue
		}
		id := putevents.NewEventID()
		if b.dedupe.Repeat(e.EventGroupID, e.DeduplicationID) {
			results[i] = putevents.OrderedResult{EventID: id, SuccessCode: "DEDUPLICATED"}
			b.mu.Lock()
			b.deduplicated++
			b.mu.Unlock()
			b.logf("deduplicated: %s in group %s (bus %s)", e.DeduplicationID, e.EventGroupID, bus)
			continue
		}
		results[i] = putevents.OrderedResult{EventID: id, SuccessCode: "PUBLISHED"}
		ev := putevents.Deliver(e.Entry, id, b.opts.Region, Account, now)
		b.route(Record{Bus: bus, Ordered: true, Group: e.EventGroupID, DeduplicationID: e.DeduplicationID, Event: ev})
	}
	writeOrdered(w, http.StatusOK, putevents.EncodeOrderedResponse(results))
}

// Deduplicated is how many entries the ordered buses answered DEDUPLICATED.
func (b *Bus) Deduplicated() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deduplicated
}

func writeOrdered(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", putevents.OrderedContentType)
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeOrderedError(w http.ResponseWriter, e *putevents.Error) {
	writeOrdered(w, e.Status, putevents.EncodeOrderedError(e))
}

// marshal writes v as JSON without HTML escaping, so events read as sent.
func marshal(v any, indent string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		// Only our own types are marshalled, and Detail was checked.
		panic(fmt.Sprintf("localbus: marshal %T: %v", v, err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body := marshal(v, "")
	w.Header().Set("Content-Type", contentTypeJSON11)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Amzn-Requestid", putevents.NewEventID())
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, e *putevents.Error) {
	w.Header().Set("X-Amzn-Errortype", e.Code)
	writeJSON(w, e.Status, map[string]string{"__type": e.Code, "message": e.Message})
}
