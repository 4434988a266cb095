package localbus

import (
	"bytes"
	"encoding/json"
	"fmt"
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
		b.route(busName(aws.ToString(e.EventBusName)), ev)
	}
	writeJSON(w, http.StatusOK, out)
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
