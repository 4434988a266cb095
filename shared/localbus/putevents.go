package localbus

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walbridge/walbridge/shared/event"
)

// Limits PutEvents enforces, from the EventBridge API reference.
const (
	maxEntries        = 10
	maxDetailType     = 128  // characters
	maxResource       = 2048 // bytes of one Resources element
	maxBusName        = 1600
	maxDetailDepth    = 1100 // nesting PutEvents processes
	contentTypeJSON11 = "application/x-amz-json-1.1"
)

// busNamePattern is the EventBusName constraint: a name or an event bus ARN.
var busNamePattern = regexp.MustCompile(`^(arn:aws[\w-]*:events:[a-z]+-[a-z]+-[\w-]+:[0-9]{12}:event-bus/)?[/.\-_A-Za-z0-9]+$`)

// putEventsEntry is a PutEventsRequestEntry as the JSON 1.1 protocol sends
// it: Time is epoch seconds.
type putEventsEntry struct {
	Source       *string
	DetailType   *string
	Detail       *string
	Resources    []string
	EventBusName *string
	Time         *float64
	TraceHeader  *string
}

type putEventsResultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

// Event is an event as EventBridge delivers it to a rule's targets. Time is
// the entry's Time, or when PutEvents received it, to the second; Resources
// is empty, not null, for an entry without any.
type Event struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// apiError is a request-level failure in the JSON 1.1 error shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func validationError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationException", msg: fmt.Sprintf(format, args...)}
}

// putEvents handles AWSEvents.PutEvents.
func (b *Bus) putEvents(w http.ResponseWriter, body []byte) {
	var in struct{ Entries []putEventsEntry }
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, code: "SerializationException", msg: err.Error()})
		return
	}
	if err := b.checkRequest(in.Entries); err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	out := struct {
		Entries          []putEventsResultEntry
		FailedEntryCount int
	}{Entries: make([]putEventsResultEntry, len(in.Entries))}
	for i, e := range in.Entries {
		if code, msg := checkEntry(e); code != "" {
			out.Entries[i] = putEventsResultEntry{ErrorCode: code, ErrorMessage: msg}
			out.FailedEntryCount++
			continue
		}
		ev := b.eventFor(e, now)
		out.Entries[i] = putEventsResultEntry{EventID: ev.ID}
		b.route(busName(deref(e.EventBusName)), ev)
	}
	writeJSON(w, http.StatusOK, out)
}

// checkRequest applies the rules that fail a PutEvents request as a whole.
func (b *Bus) checkRequest(entries []putEventsEntry) *apiError {
	switch n := len(entries); {
	case n < 1:
		return validationError("1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > maxEntries:
		return validationError("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d (got %d entries)", maxEntries, n)
	}
	total, complete := 0, false
	for i, e := range entries {
		if e.EventBusName != nil {
			if name := *e.EventBusName; len(name) > maxBusName || !busNamePattern.MatchString(name) {
				return validationError("1 validation error detected: Value '%s' at 'entries.%d.member.eventBusName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, i+1, busNamePattern)
			}
		}
		total += entrySize(e)
		complete = complete || (e.Source != nil && e.DetailType != nil && e.Detail != nil)
	}
	if total > b.opts.MaxRequestBytes {
		return validationError("Total size of the entries in the request is over the limit (%d bytes, limit %d).", total, b.opts.MaxRequestBytes)
	}
	if !complete {
		// Documented: a request in which no entry has Source, DetailType and
		// Detail fails as a whole.
		return validationError("No entry in the request has Source, DetailType and Detail, which EventBridge requires.")
	}
	return nil
}

// entrySize is the size PutEvents counts for an entry, by the documented
// calculation that event.Event.EntrySize implements.
func entrySize(e putEventsEntry) int {
	ev := event.Event{Source: deref(e.Source), DetailType: deref(e.DetailType), Detail: []byte(deref(e.Detail)), Resources: e.Resources}
	if e.Time != nil {
		ev.Time = time.Unix(1, 0) // any set time counts the same
	}
	return ev.EntrySize()
}

// checkEntry applies the rules that fail one entry, with the entry
// ErrorCodes EventBridge documents.
func checkEntry(e putEventsEntry) (code, msg string) {
	switch {
	case deref(e.Source) == "":
		return "InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument."
	case strings.HasPrefix(*e.Source, "aws."):
		return "NotAuthorizedForSourceException", "Not authorized for the source."
	case deref(e.DetailType) == "":
		return "InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."
	case utf8.RuneCountInString(*e.DetailType) > maxDetailType:
		return "InvalidArgument", fmt.Sprintf("Parameter DetailType is not valid. Reason: DetailType is longer than %d characters.", maxDetailType)
	case deref(e.Detail) == "":
		return "InvalidArgument", "Parameter Detail is not valid. Reason: Detail is a required argument."
	}
	for _, r := range e.Resources {
		if len(r) > maxResource {
			return "InvalidArgument", fmt.Sprintf("Parameter Resources is not valid. Reason: a resource is longer than %d bytes.", maxResource)
		}
	}
	if err := checkDetail(*e.Detail); err != nil {
		return "MalformedDetail", "Detail is malformed: " + err.Error()
	}
	return "", ""
}

// checkDetail accepts one JSON object whose integers fit in 64 bits and
// whose nesting PutEvents processes. It walks tokens, so deep nesting costs
// no stack.
func checkDetail(detail string) error {
	dec := json.NewDecoder(strings.NewReader(detail))
	dec.UseNumber()
	depth := 0
	for first := true; ; first = false {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return errors.New("unexpected end of JSON")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if first && tok != json.Delim('{') {
			return errors.New("Detail must be a JSON object")
		}
		if !first && depth == 0 {
			return errors.New("unexpected data after the JSON object")
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
				if depth > maxDetailDepth {
					return fmt.Errorf("nested deeper than %d levels", maxDetailDepth)
				}
			} else {
				depth--
			}
		case json.Number:
			if !strings.ContainsAny(string(t), ".eE") {
				if _, err := strconv.ParseInt(string(t), 10, 64); err != nil {
					return fmt.Errorf("integer %s is outside the 64-bit range", t)
				}
			}
		}
	}
}

// eventFor builds the event EventBridge would deliver for an accepted entry.
func (b *Bus) eventFor(e putEventsEntry, now time.Time) Event {
	t := now
	if e.Time != nil {
		sec, frac := math.Modf(*e.Time)
		t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	return Event{
		Version:    "0",
		ID:         newUUID(),
		DetailType: *e.DetailType,
		Source:     *e.Source,
		Account:    Account,
		Time:       t.Format("2006-01-02T15:04:05Z"),
		Region:     b.opts.Region,
		Resources:  resources,
		Detail:     json.RawMessage(*e.Detail),
	}
}

// newUUID returns a random (version 4) UUID, the form of EventBridge's event
// IDs.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails (crypto/rand)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("X-Amzn-Errortype", e.code)
	writeJSON(w, e.status, map[string]string{"__type": e.code, "message": e.msg})
}
