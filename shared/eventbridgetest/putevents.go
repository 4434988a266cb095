package eventbridgetest

import (
	"math"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/walbridge/walbridge/shared/putevents"
)

// request is the local bus's Request hook: it counts the call and may fail
// a valid one whole.
func (s *Server) request(entries []putevents.Entry, invalid *putevents.Error) *putevents.Error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.stats.Requests++
	s.stats.Entries += len(entries)
	if invalid != nil {
		s.stats.Rejected++
		return nil
	}
	if f, ok := s.Failure("PutEvents"); ok {
		s.stats.RequestErrors++
		return &putevents.Error{Status: http.StatusBadRequest, Code: f.Code, Message: f.Message}
	}
	switch p := s.rng.Float64(); {
	case p < s.opts.ThrottleRequestFraction:
		s.stats.RequestErrors++
		return &putevents.Error{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate exceeded"}
	case p < s.opts.ThrottleRequestFraction+s.opts.ServerErrorFraction:
		s.stats.RequestErrors++
		return &putevents.Error{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: internalFailure}
	}
	return nil
}

const internalFailure = "The request processing has failed because of an unknown error, exception or failure."

// entry is the local bus's Entry hook: Reject and the entry fault fractions.
func (s *Server) entry(e putevents.Entry, code, message string) (string, string) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if code == "" && s.opts.Reject != nil {
		code, message = s.opts.Reject(eventOf(e, ""))
	}
	if code != "" {
		s.stats.InvalidEntries++
		return code, message
	}
	switch p := s.rng.Float64(); {
	case p < s.opts.ThrottleFraction:
		s.stats.Throttled++
		return "ThrottlingException", "Rate exceeded"
	case p < s.opts.ThrottleFraction+s.opts.InternalFailureFraction:
		s.stats.InternalFailures++
		return "InternalFailure", internalFailure
	}
	return "", ""
}

// accepted is the local bus's Accepted hook.
func (s *Server) accepted(e putevents.Entry, id string) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.stats.Accepted++
	if !s.opts.Discard {
		s.events = append(s.events, eventOf(e, id))
	}
}

// eventOf is an entry as Events shows it; Time keeps the millisecond
// precision the SDK sends.
func eventOf(e putevents.Entry, id string) Event {
	ev := Event{EventID: id, Source: aws.ToString(e.Source), DetailType: aws.ToString(e.DetailType), Detail: aws.ToString(e.Detail),
		Resources: e.Resources, EventBusName: aws.ToString(e.EventBusName)}
	if e.Time != nil {
		sec, frac := math.Modf(*e.Time)
		ev.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()
	}
	return ev
}
