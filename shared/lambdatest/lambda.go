// Package lambdatest is an in-test AWS Lambda endpoint for the calls
// walbridge's provisioning and operator tools make, in the REST-JSON protocol
// the real aws-sdk-go-v2 lambda client speaks (BaseEndpoint or
// AWS_ENDPOINT_URL_LAMBDA): CreateFunction and UpdateFunctionCode, and the
// event source mapping operations (/2015-03-31/event-source-mappings) with
// Lambda's state machine (Creating, Enabling, Enabled, Disabling, Disabled,
// Updating, Deleting) and its rule of one mapping per function and event
// source. It keeps an awstest.Log of every call, and Fail makes an
// operation answer with an error.
//
// Size: about 800 lines, most of them Lambda's documented validation and
// state transitions, which the replay and provisioning tests rely on.
package lambdatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/awstest"
)

// Options shapes a Server. The zero value is account
// 000000000000 in us-east-1, with every state transition seen once.
type Options struct {
	// Region and Account make the ARNs (defaults us-east-1, 000000000000).
	awstest.Place
	// Settle is how many reads of a mapping (GetEventSourceMapping, or a
	// ListEventSourceMappings page that holds it) still report a
	// transitional state (Creating, Enabling, Disabling, Updating, Deleting)
	// before the transition completes; the read after that sees the end
	// state, or for Deleting finds the mapping gone. Default 1; -1 means 0,
	// transitions complete on the first read.
	Settle int
	// Log receives the calls; nil gives the fake a Log of its own.
	Log *awstest.Log
}

// Server is an in-process endpoint for Lambda's REST-JSON API: the
// CreateFunction and UpdateFunctionCode calls that deploy a function (see
// functions.go), and the event source mapping API (under
// /2015-03-31/event-source-mappings): Create, Get, Update, Delete and List.
// For mappings, like Lambda it answers Create, Update and Delete
// with 202 and a transitional state that later reads see settle; refuses a
// second mapping of one function (ARN with qualifier) and event source with
// ResourceConflictException (409), also while the first is Disabled or
// Deleting; refuses Update and Delete during a transition with
// ResourceInUseException; requires StartingPosition (and with AT_TIMESTAMP
// StartingPositionTimestamp) for Kinesis and DynamoDB sources; refuses an
// OnSuccess destination; and fills Lambda's defaults for stream sources.
// Functions must be created (CreateFunction, or AddFunction) first.
type Server struct {
	awstest.Endpoint // AWS_ENDPOINT_URL_LAMBDA
	opts             Options

	mu            sync.Mutex
	functions     map[string]*Function // by unqualified name
	mappings      []*mapping           // in creation order; deleted ones removed
	nextID        int
	delivering    map[string]int // event source ARN -> mappings that may invoke now
	maxDelivering map[string]int
}

// mapping is one event source mapping. settings holds the members as
// received (generic JSON), apart from those the fake manages itself.
type mapping struct {
	uuid, functionArn, sourceArn string
	settings                     map[string]any
	enabled                      bool
	state                        string
	target                       string // state the transition ends in; "" when settled, "gone" for Deleting
	reads                        int    // reads left that see the transitional state
	reason                       string
	modified                     time.Time
}

// The states Lambda reports for an event source mapping.
const (
	stateCreating  = "Creating"
	stateEnabling  = "Enabling"
	stateEnabled   = "Enabled"
	stateDisabling = "Disabling"
	stateDisabled  = "Disabled"
	stateUpdating  = "Updating"
	stateDeleting  = "Deleting"
	stateGone      = "gone"
)

const mappingsPath = "/2015-03-31/event-source-mappings"

// Start starts a Server for the test and stops it when the test
// ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	l := New(opts)
	tb.Cleanup(l.Close)
	return l
}

// New starts a Server; the caller must Close it.
func New(opts Options) *Server {
	opts.Place = opts.Place.WithDefaults()
	switch {
	case opts.Settle == 0:
		opts.Settle = 1
	case opts.Settle < 0:
		opts.Settle = 0
	}
	l := &Server{opts: opts, functions: map[string]*Function{},
		delivering: map[string]int{}, maxDelivering: map[string]int{}}
	l.Serve(l.serve, opts.Log)
	return l
}

// AddFunction makes a function known (mappings may name it, with or
// without a qualifier), as if created before the test, and returns its
// unqualified ARN.
func (l *Server) AddFunction(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.functions[name] == nil {
		l.functions[name] = &Function{Name: name}
	}
	return l.functionArn(name, "")
}

// Settle completes every transition in progress, as time would.
func (l *Server) Settle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range append([]*mapping(nil), l.mappings...) {
		if m.target != "" {
			m.reads = 0
			l.observeLocked(m)
		}
	}
}

// MaxDelivering is the largest number of mappings on eventSourceArn that
// could invoke their functions at the same moment (enabled, or still
// disabling), since the fake started.
func (l *Server) MaxDelivering(eventSourceArn string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxDelivering[eventSourceArn]
}

func (l *Server) functionArn(name, qualifier string) string {
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", l.opts.Region, l.opts.Account, name)
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

// resolveFunction turns a FunctionName in any of Lambda's forms (name,
// name:qualifier, partial ARN, ARN) into the function's ARN with qualifier,
// and its unqualified name.
func (l *Server) resolveFunction(name string) (arn, base string, err error) {
	var qualifier string
	rest := name
	if i := strings.Index(rest, "function:"); i >= 0 {
		rest = rest[i+len("function:"):]
	}
	base, qualifier, _ = strings.Cut(rest, ":")
	if base == "" || strings.Contains(qualifier, ":") {
		return "", "", fmt.Errorf("invalid function name %q", name)
	}
	return l.functionArn(base, qualifier), base, nil
}

func (l *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	body, params, err := awstest.ReadBody(r.Body)
	for k, v := range r.URL.Query() {
		params[k] = strings.Join(v, ",")
	}
	var op, uuid, function string
	switch {
	case path == functionsPath && r.Method == http.MethodPost:
		op = "CreateFunction"
	case strings.HasPrefix(path, functionsPath+"/") && strings.HasSuffix(path, "/code") && r.Method == http.MethodPut:
		function = strings.TrimSuffix(strings.TrimPrefix(path, functionsPath+"/"), "/code")
		params["FunctionName"] = function
		op = "UpdateFunctionCode"
	case path == mappingsPath && r.Method == http.MethodPost:
		op = "CreateEventSourceMapping"
	case path == mappingsPath && r.Method == http.MethodGet:
		op = "ListEventSourceMappings"
	case strings.HasPrefix(path, mappingsPath+"/"):
		uuid = strings.TrimPrefix(path, mappingsPath+"/")
		params["UUID"] = uuid
		switch r.Method {
		case http.MethodGet:
			op = "GetEventSourceMapping"
		case http.MethodPut:
			op = "UpdateEventSourceMapping"
		case http.MethodDelete:
			op = "DeleteEventSourceMapping"
		}
	}
	if op == "" {
		lambdaError(w, http.StatusNotFound, "UnknownOperationException", fmt.Sprintf("%s %s is not served by this fake", r.Method, r.URL.Path))
		return
	}
	l.Log.Add(awstest.Call{Service: "lambda", Op: op, Params: params})
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not parse request body into json: "+err.Error())
		return
	}
	if f, ok := l.Failure(op); ok {
		lambdaError(w, http.StatusBadRequest, f.Code, f.Message)
		return
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	switch op {
	case "CreateFunction":
		l.createFunction(w, body)
	case "UpdateFunctionCode":
		l.updateFunctionCode(w, function, body)
	case "CreateEventSourceMapping":
		l.create(w, body)
	case "ListEventSourceMappings":
		l.list(w, r)
	case "GetEventSourceMapping":
		m := l.findLocked(uuid)
		if m != nil {
			l.observeLocked(m)
		}
		if m == nil || m.state == stateGone {
			notFound(w)
			return
		}
		awstest.WriteJSON(w, "application/json", http.StatusOK, l.view(m))
	case "UpdateEventSourceMapping":
		l.update(w, uuid, body)
	case "DeleteEventSourceMapping":
		l.delete(w, uuid)
	}
}

// Members of a create or update request that the fake manages itself
// rather than storing as settings.
var managedMembers = map[string]bool{"FunctionName": true, "Enabled": true, "EventSourceArn": true, "Tags": true, "UUID": true}

// streamDefaults are the settings Lambda reports for a Kinesis or DynamoDB
// mapping created without them.
var streamDefaults = map[string]any{
	"BatchSize":                      json.Number("100"),
	"MaximumBatchingWindowInSeconds": json.Number("0"),
	"ParallelizationFactor":          json.Number("1"),
	"MaximumRetryAttempts":           json.Number("-1"),
	"MaximumRecordAgeInSeconds":      json.Number("-1"),
	"BisectBatchOnFunctionError":     false,
	"TumblingWindowInSeconds":        json.Number("0"),
}

func isStreamSource(arn string) bool {
	return strings.HasPrefix(arn, "arn:aws:kinesis:") || strings.HasPrefix(arn, "arn:aws:dynamodb:")
}

func (l *Server) create(w http.ResponseWriter, body map[string]any) {
	fn, _ := body["FunctionName"].(string)
	source, _ := body["EventSourceArn"].(string)
	if fn == "" || source == "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "FunctionName and EventSourceArn are required")
		return
	}
	arn, base, err := l.resolveFunction(fn)
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
		return
	}
	if l.functions[base] == nil {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn)
		return
	}
	if msg := l.conflictLocked(arn, source, ""); msg != "" {
		lambdaError(w, http.StatusConflict, "ResourceConflictException", msg)
		return
	}
	if isStreamSource(source) {
		if msg := checkStartingPosition(body); msg != "" {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", msg)
			return
		}
	}
	if msg := checkDestination(body); msg != "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", msg)
		return
	}
	settings := map[string]any{}
	if isStreamSource(source) {
		for k, v := range streamDefaults {
			settings[k] = v
		}
	}
	for k, v := range body {
		if !managedMembers[k] {
			settings[k] = v
		}
	}
	enabled := true
	if e, ok := body["Enabled"].(bool); ok {
		enabled = e
	}
	l.nextID++
	m := &mapping{
		uuid:        fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", l.nextID),
		functionArn: arn,
		sourceArn:   source,
		settings:    settings,
		enabled:     enabled,
		reason:      "USER_INITIATED",
		modified:    time.Now(),
	}
	target := stateDisabled
	if enabled {
		target = stateEnabled
	}
	l.mappings = append(l.mappings, m)
	l.transitionLocked(m, stateCreating, target)
	awstest.WriteJSON(w, "application/json", http.StatusAccepted, l.view(m))
}

func checkStartingPosition(body map[string]any) string {
	pos, _ := body["StartingPosition"].(string)
	_, hasTimestamp := body["StartingPositionTimestamp"]
	switch pos {
	case "":
		return "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null"
	case "TRIM_HORIZON", "LATEST":
		if hasTimestamp {
			return "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP"
		}
	case "AT_TIMESTAMP":
		if !hasTimestamp {
			return "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP"
		}
	default:
		return fmt.Sprintf("1 validation error detected: Value '%s' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]", pos)
	}
	return ""
}

func checkDestination(body map[string]any) string {
	if dc, ok := body["DestinationConfig"].(map[string]any); ok {
		if _, ok := dc["OnSuccess"]; ok {
			return "OnSuccess destinations are not supported for event source mappings"
		}
	}
	return ""
}

// conflictLocked describes the mapping that already joins function and
// source ("" when there is none besides except).
func (l *Server) conflictLocked(functionArn, source, except string) string {
	for _, m := range l.mappings {
		if m.uuid != except && m.functionArn == functionArn && m.sourceArn == source && m.state != stateGone {
			return fmt.Sprintf("The event source arn (\" %s \") and function (\" %s \") provided mapping already exists. Please update or delete the existing mapping with UUID %s", source, functionArn, m.uuid)
		}
	}
	return ""
}

func (l *Server) update(w http.ResponseWriter, uuid string, body map[string]any) {
	m := l.findLocked(uuid)
	if m == nil {
		notFound(w)
		return
	}
	if m.target != "" {
		lambdaError(w, http.StatusBadRequest, "ResourceInUseException", fmt.Sprintf("Cannot update the event source mapping %s because it is in use (%s)", uuid, m.state))
		return
	}
	if fn, ok := body["FunctionName"].(string); ok {
		arn, base, err := l.resolveFunction(fn)
		if err != nil {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
			return
		}
		if l.functions[base] == nil {
			lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn)
			return
		}
		if msg := l.conflictLocked(arn, m.sourceArn, m.uuid); msg != "" {
			lambdaError(w, http.StatusConflict, "ResourceConflictException", msg)
			return
		}
		m.functionArn = arn
	}
	if msg := checkDestination(body); msg != "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", msg)
		return
	}
	for k, v := range body {
		if !managedMembers[k] {
			m.settings[k] = v
		}
	}
	from, to := stateUpdating, m.state
	if e, ok := body["Enabled"].(bool); ok && e != m.enabled {
		if e {
			from, to = stateEnabling, stateEnabled
		} else {
			from, to = stateDisabling, stateDisabled
		}
		m.enabled = e
	}
	m.reason = "USER_INITIATED"
	m.modified = time.Now()
	l.transitionLocked(m, from, to)
	awstest.WriteJSON(w, "application/json", http.StatusAccepted, l.view(m))
}

func (l *Server) delete(w http.ResponseWriter, uuid string) {
	m := l.findLocked(uuid)
	if m == nil {
		notFound(w)
		return
	}
	if m.target != "" {
		lambdaError(w, http.StatusBadRequest, "ResourceInUseException", fmt.Sprintf("Cannot delete the event source mapping %s because it is in use (%s)", uuid, m.state))
		return
	}
	m.reason = "USER_INITIATED"
	m.modified = time.Now()
	l.transitionLocked(m, stateDeleting, stateGone)
	awstest.WriteJSON(w, "application/json", http.StatusAccepted, l.view(m))
}

func (l *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var fnArn string
	if fn := q.Get("FunctionName"); fn != "" {
		arn, _, err := l.resolveFunction(fn)
		if err != nil {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
			return
		}
		fnArn = arn
	}
	source := q.Get("EventSourceArn")
	start := 0
	if s := q.Get("Marker"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "invalid Marker "+s)
			return
		}
		start = n
	}
	limit := 100
	if s := q.Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "MaxItems must be between 1 and 10000")
			return
		}
		limit = n
	}
	var matched []*mapping
	for _, m := range l.mappings {
		if (fnArn == "" || m.functionArn == fnArn) && (source == "" || m.sourceArn == source) {
			matched = append(matched, m)
		}
	}
	out := struct {
		EventSourceMappings []map[string]any `json:"EventSourceMappings"`
		NextMarker          string           `json:"NextMarker,omitempty"`
	}{EventSourceMappings: []map[string]any{}}
	for i := start; i < len(matched) && i < start+limit; i++ {
		m := matched[i]
		l.observeLocked(m)
		if m.state != stateGone {
			out.EventSourceMappings = append(out.EventSourceMappings, l.view(m))
		}
	}
	if start+limit < len(matched) {
		out.NextMarker = strconv.Itoa(start + limit)
	}
	awstest.WriteJSON(w, "application/json", http.StatusOK, out)
}

func (l *Server) findLocked(uuid string) *mapping {
	for _, m := range l.mappings {
		if m.uuid == uuid {
			return m
		}
	}
	return nil
}

// transitionLocked puts m in a transitional state that ends in target.
func (l *Server) transitionLocked(m *mapping, state, target string) {
	m.state, m.target, m.reads = state, target, l.opts.Settle
	l.countLocked(m.sourceArn)
}

// observeLocked is one read of m: it uses up one of the reads that still
// see the transition, or completes it.
func (l *Server) observeLocked(m *mapping) {
	if m.target == "" {
		return
	}
	if m.reads > 0 {
		m.reads--
		return
	}
	m.state, m.target = m.target, ""
	if m.state == stateGone {
		for i, x := range l.mappings {
			if x == m {
				l.mappings = append(l.mappings[:i], l.mappings[i+1:]...)
				break
			}
		}
	}
	l.countLocked(m.sourceArn)
}

// countLocked recounts the mappings on source that may invoke right now
// (enabled, or disabled but still disabling) and keeps the maximum.
func (l *Server) countLocked(source string) {
	n := 0
	for _, m := range l.mappings {
		if m.sourceArn == source && m.state != stateGone && (m.enabled || m.state == stateDisabling) {
			n++
		}
	}
	l.delivering[source] = n
	if n > l.maxDelivering[source] {
		l.maxDelivering[source] = n
	}
}

// view is the EventSourceMappingConfiguration Lambda answers with.
func (l *Server) view(m *mapping) map[string]any {
	v := make(map[string]any, len(m.settings)+8)
	for k, s := range m.settings {
		v[k] = s
	}
	state := m.state
	if state == stateGone {
		state = stateDeleting
	}
	v["UUID"] = m.uuid
	v["EventSourceArn"] = m.sourceArn
	v["FunctionArn"] = m.functionArn
	v["State"] = state
	v["StateTransitionReason"] = m.reason
	v["LastModified"] = json.Number(strconv.FormatFloat(float64(m.modified.UnixMilli())/1000, 'f', -1, 64))
	v["LastProcessingResult"] = "No records processed"
	v["EventSourceMappingArn"] = fmt.Sprintf("arn:aws:lambda:%s:%s:event-source-mapping:%s", l.opts.Region, l.opts.Account, m.uuid)
	return v
}

func notFound(w http.ResponseWriter) {
	lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "The resource you requested does not exist.")
}

// lambdaError answers the way Lambda does: the error code in
// X-Amzn-ErrorType, a JSON body with Type and Message.
func lambdaError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	awstest.WriteJSON(w, "application/json", status, map[string]string{"Type": "User", "Message": msg})
}
