// Package putevents holds the rules EventBridge's PutEvents applies to a
// request and to each of its entries, with the error codes and messages AWS
// answers with. The local development bus (shared/localbus) validates with
// it, and the in-test endpoint (shared/eventbridgetest) is that bus with
// faults, so that fanout is tested against, and developers run against, one
// reading of the API reference.
package putevents

import (
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// Limits from the EventBridge API reference.
const (
	MaxEntries      = 10
	MaxRequestBytes = 1 << 20 // the default request limit (256 KiB on older accounts)
	maxDetailType   = 128     // characters
	maxResource     = 2048    // bytes of one Resources element
	maxBusName      = 1600
	maxDetailDepth  = 1100 // nesting PutEvents processes
)

// busNamePattern is the EventBusName constraint: a name or an event bus ARN.
var busNamePattern = regexp.MustCompile(`^(arn:aws[\w-]*:events:[a-z]+-[a-z]+-[\w-]+:[0-9]{12}:event-bus/)?[/.\-_A-Za-z0-9]+$`)

// Entry is a PutEventsRequestEntry as the JSON 1.1 protocol sends it: Time
// is epoch seconds.
type Entry struct {
	Source       *string
	DetailType   *string
	Detail       *string
	Resources    []string
	EventBusName *string
	Time         *float64
	TraceHeader  *string
}

// Request is a PutEvents request body.
type Request struct {
	Entries    []Entry
	EndpointID *string `json:"EndpointId"`
}

// ResultEntry is one entry of the answer.
type ResultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

// Delivered is the envelope in which EventBridge delivers an event to a
// rule's targets, fields in its order. Time is to the second; Resources is
// empty, not null, for an entry without any.
type Delivered struct {
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

// Error is a failure of a whole request, in the JSON 1.1 error shape.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func validation(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "ValidationException", Message: fmt.Sprintf(format, args...)}
}

// CheckRequest applies the rules that fail a request as a whole: 1 to 10
// entries, well-formed bus names, the entries' total size (by the documented
// calculation) within maxBytes, and at least one entry with Source,
// DetailType and Detail.
func CheckRequest(entries []Entry, maxBytes int) *Error {
	switch n := len(entries); {
	case n < 1:
		return validation("1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > MaxEntries:
		return validation("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d (got %d entries)", MaxEntries, n)
	}
	total, complete := 0, false
	for i, e := range entries {
		if e.EventBusName != nil {
			if name := *e.EventBusName; len(name) > maxBusName || !busNamePattern.MatchString(name) {
				return validation("1 validation error detected: Value '%s' at 'entries.%d.member.eventBusName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, i+1, busNamePattern)
			}
		}
		total += EntrySize(e)
		complete = complete || (e.Source != nil && e.DetailType != nil && e.Detail != nil)
	}
	if total > maxBytes {
		return validation("Total size of the entries in the request is over the limit (%d bytes, limit %d).", total, maxBytes)
	}
	if !complete {
		// Documented: a request in which no entry has Source, DetailType and
		// Detail fails as a whole.
		return validation("No entry in the request has Source, DetailType and Detail, which EventBridge requires.")
	}
	return nil
}

// EntrySize is the size PutEvents counts for an entry, by the documented
// calculation: the UTF-8 bytes of Source, DetailType, Detail and each
// resource, plus 14 bytes when Time is set. (fanout sizes its events with
// event.Event.EntrySize; this package cannot import shared/event, whose
// tests start the in-test endpoint that imports this one.)
func EntrySize(e Entry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	if e.Time != nil {
		n += 14
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// CheckEntry applies the rules that fail one entry, with the entry
// ErrorCodes EventBridge documents; an empty code means the entry is valid.
func CheckEntry(e Entry) (code, message string) {
	switch {
	case aws.ToString(e.Source) == "":
		return "InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument."
	case strings.HasPrefix(*e.Source, "aws."):
		return "NotAuthorizedForSourceException", "Not authorized for the source."
	case aws.ToString(e.DetailType) == "":
		return "InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."
	case utf8.RuneCountInString(*e.DetailType) > maxDetailType:
		return "InvalidArgument", fmt.Sprintf("Parameter DetailType is not valid. Reason: DetailType is longer than %d characters.", maxDetailType)
	case aws.ToString(e.Detail) == "":
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

// checkDetail accepts one JSON object whose integers fit in 64 bits, whose
// other numbers are finite doubles, and whose nesting PutEvents processes.
// It walks tokens, so deep nesting costs no stack.
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
			} else if _, err := strconv.ParseFloat(string(t), 64); err != nil {
				return fmt.Errorf("number %s is outside the double range", t)
			}
		}
	}
}

// FromSDK is an SDK request entry as the JSON 1.1 protocol would send it,
// for code that applies these rules to a PutEventsInput in process (fanout
// poll --stdout). Time is kept to the millisecond, as the SDK sends it.
func FromSDK(e types.PutEventsRequestEntry) Entry {
	out := Entry{Source: e.Source, DetailType: e.DetailType, Detail: e.Detail, Resources: e.Resources, EventBusName: e.EventBusName, TraceHeader: e.TraceHeader}
	if e.Time != nil {
		t := float64(e.Time.UnixMilli()) / 1e3
		out.Time = &t
	}
	return out
}

// Deliver is the event EventBridge delivers to targets for an accepted
// entry (one that passed CheckEntry): id is its event ID, and Time is the
// entry's or, without one, received, to the second.
func Deliver(e Entry, id, region, account string, received time.Time) Delivered {
	t := received
	if e.Time != nil {
		sec, frac := math.Modf(*e.Time)
		t = time.Unix(int64(sec), int64(frac*1e9))
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	return Delivered{
		Version:    "0",
		ID:         id,
		DetailType: aws.ToString(e.DetailType),
		Source:     aws.ToString(e.Source),
		Account:    account,
		Time:       t.UTC().Format("2006-01-02T15:04:05Z"),
		Region:     region,
		Resources:  resources,
		Detail:     json.RawMessage(aws.ToString(e.Detail)),
	}
}

// NewEventID returns a random (version 4) UUID, the form of EventBridge's
// event IDs.
func NewEventID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails (crypto/rand)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
