// Package awstest is what walbridge's in-test AWS endpoints share (packages
// kinesistest, eventbridgetest, lambdatest, sqstest): an SDK configuration
// for local endpoints, an environment that keeps the machine's AWS settings
// out of a test, and the plumbing of a JSON-protocol endpoint: a Log of the
// calls it received, in order and flattened for assertions, Faults that make
// an operation answer with an error, and a Recorder that logs the calls an
// SDK client makes to an endpoint that keeps no log (the Kinesis emulator).
// Signatures are never checked.
package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Call is one API call a fake (or a Recorder) saw.
type Call struct {
	// Service is "lambda", "sqs", "events", or the service a Recorder saw
	// ("kinesis").
	Service string
	// Op is the API operation, as AWS names it ("CreateEventSourceMapping").
	Op string
	// Params are the call's parameters flattened to strings: path and query
	// parameters by their API member names, body members by their JSON path
	// with dots ("DestinationConfig.OnFailure.Destination", list items by
	// index: "Records.0.PartitionKey"). Opaque or bulky members (record
	// data, shard iterators) are left out.
	Params map[string]string
}

// String renders the call as "service Op Name=value ..." with the
// parameters sorted by name, one stable line for assertions.
func (c Call) String() string {
	var b strings.Builder
	b.WriteString(c.Service)
	b.WriteByte(' ')
	b.WriteString(c.Op)
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, c.Params[k])
	}
	return b.String()
}

// Log is an ordered record of calls, safe for concurrent use. Several fakes
// (and Recorders) may share one Log, to see the order of calls across
// services.
type Log struct {
	mu    sync.Mutex
	calls []Call
}

// Add appends a call.
func (l *Log) Add(c Call) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

// Calls returns a copy of the calls so far, in order.
func (l *Log) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.calls...)
}

// Lines returns Call.String of each call so far, in order.
func (l *Log) Lines() []string {
	calls := l.Calls()
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	return out
}

// Reset forgets the calls so far (after a test has set things up).
func (l *Log) Reset() {
	l.mu.Lock()
	l.calls = nil
	l.mu.Unlock()
}

// omitted are body members never copied into Call.Params: record payloads,
// deployment packages and opaque iterators, which would only make log lines
// unreadable. (lambdatest.Server.Function has a function's package.)
var omitted = map[string]bool{"Data": true, "ShardIterator": true, "Body": true, "ZipFile": true}

// Fault is the error an endpoint answers an operation with after Fail.
type Fault struct {
	Code, Message string
}

// Faults holds the failures set with Fail, by operation name. Endpoints
// embed it, so that a test calls Fail on the endpoint.
type Faults struct {
	m sync.Map
}

// Fail makes every later call of op (its AWS name, "PutRule") answer with
// an error of the given code (a client error, which SDK clients do not
// retry), after it is logged; an empty code serves op again.
func (f *Faults) Fail(op, code, message string) {
	if code == "" {
		f.m.Delete(op)
		return
	}
	f.m.Store(op, Fault{Code: code, Message: message})
}

// Failure is the fault set for op, if any.
func (f *Faults) Failure(op string) (Fault, bool) {
	v, ok := f.m.Load(op)
	if !ok {
		return Fault{}, false
	}
	return v.(Fault), true
}

// flatten adds the members of a JSON body to params under their dotted
// paths. Numbers keep their JSON text.
func flatten(params map[string]string, prefix string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if omitted[k] {
				continue
			}
			flatten(params, join(prefix, k), e)
		}
	case []any:
		for i, e := range v {
			flatten(params, join(prefix, strconv.Itoa(i)), e)
		}
	case string:
		params[prefix] = v
	case json.Number:
		params[prefix] = v.String()
	case bool:
		params[prefix] = strconv.FormatBool(v)
	case nil:
		params[prefix] = "null"
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// ReadBody reads a JSON object body into a generic map (numbers as
// json.Number; an empty body is an empty object) and its members flattened
// into Call parameters (empty when the body is not JSON).
func ReadBody(r io.Reader) (body map[string]any, params map[string]string, err error) {
	body, _, err = decodeBody(r)
	params = map[string]string{}
	if err == nil {
		flatten(params, "", body)
	}
	return body, params, err
}

// decodeBody reads a JSON object body into a generic map (numbers as
// json.Number); an empty body is an empty object.
func decodeBody(r io.Reader) (map[string]any, []byte, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	m := map[string]any{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return m, raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, raw, err
	}
	return m, raw, nil
}

// WriteJSON answers with status and v as JSON in the given content type.
func WriteJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(body)
}
