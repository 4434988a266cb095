package eventbridgetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"

	"github.com/walbridge/walbridge/shared/awstest"
)

// Rule is a rule as the Server holds it, for assertions.
type Rule struct {
	Name, EventBus, EventPattern, ScheduleExpression, State string
	// Targets are in the order they were first put.
	Targets []Target
}

// Target is one target of a Rule.
type Target struct {
	ID, Arn string
}

// Buses returns the names of the event buses, sorted ("default" among
// them).
func (e *Server) Buses() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for name := range e.buses {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Rules returns copies of the rules on bus, sorted by name.
func (e *Server) Rules(bus string) []Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Rule
	for _, r := range e.buses[bus] {
		c := *r
		c.Targets = append([]Target(nil), r.Targets...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// control answers the control-plane operations provisioning uses.
func (e *Server) control(w http.ResponseWriter, r *http.Request, op string) {
	body, params, err := awstest.ReadBody(r.Body)
	e.Log.Add(awstest.Call{Service: "events", Op: op, Params: params})
	if err != nil {
		eventsError(w, http.StatusBadRequest, "SerializationException", "request body is not JSON: "+err.Error())
		return
	}
	if f, ok := e.Failure(op); ok {
		eventsError(w, http.StatusBadRequest, f.Code, f.Message)
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	switch op {
	case "CreateEventBus":
		e.createBus(w, body)
	case "PutRule":
		e.putRule(w, body)
	case "PutTargets":
		e.putTargets(w, body)
	default:
		eventsError(w, http.StatusBadRequest, "UnknownOperationException", op+" is not served by eventbridgetest")
	}
}

const eventsJSON = "application/x-amz-json-1.1"

// The API's constraints on names and IDs.
var (
	busNamePattern  = regexp.MustCompile(`^[/\.\-_A-Za-z0-9]+$`)
	busRefPattern   = regexp.MustCompile(`^(arn:aws[\w-]*:events:[a-z]{2}-[a-z]+-[\w-]+:[0-9]{12}:event-bus/)?([/\.\-_A-Za-z0-9]+)$`)
	ruleNamePattern = regexp.MustCompile(`^[\.\-_A-Za-z0-9]+$`)
	arnPattern      = regexp.MustCompile(`^arn:aws[\w-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]*:.+$`)
)

func (e *Server) createBus(w http.ResponseWriter, body map[string]any) {
	name, _ := body["Name"].(string)
	if msg := checkMember("name", name, busNamePattern, 256); msg != "" {
		eventsError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}
	if e.buses[name] != nil {
		eventsError(w, http.StatusBadRequest, "ResourceAlreadyExistsException", fmt.Sprintf("Event bus %s already exists.", name))
		return
	}
	e.buses[name] = map[string]*Rule{}
	awstest.WriteJSON(w, eventsJSON, http.StatusOK, map[string]string{"EventBusArn": e.arn("event-bus/" + name)})
}

func (e *Server) putRule(w http.ResponseWriter, body map[string]any) {
	name, bus, ok := e.ruleRefLocked(w, body, "Name", "name")
	if !ok {
		return
	}
	pattern, _ := body["EventPattern"].(string)
	schedule, _ := body["ScheduleExpression"].(string)
	state, _ := body["State"].(string)
	switch state {
	case "":
		state = "ENABLED"
	case "ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS":
	default:
		eventsError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]", state))
		return
	}
	switch {
	case pattern == "" && schedule == "":
		eventsError(w, http.StatusBadRequest, "ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified.")
		return
	case schedule != "" && bus != "default":
		eventsError(w, http.StatusBadRequest, "ValidationException", "ScheduleExpression is supported only on the default event bus.")
		return
	case pattern != "":
		if msg := checkEventPattern(pattern); msg != "" {
			eventsError(w, http.StatusBadRequest, "InvalidEventPatternException", "Event pattern is not valid. Reason: "+msg)
			return
		}
	}
	rules := e.buses[bus]
	if rules == nil {
		eventsError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Event bus %s does not exist.", bus))
		return
	}
	rule := rules[name]
	if rule == nil {
		rule = &Rule{Name: name, EventBus: bus}
		rules[name] = rule
	}
	rule.EventPattern, rule.ScheduleExpression, rule.State = pattern, schedule, state
	awstest.WriteJSON(w, eventsJSON, http.StatusOK, map[string]string{"RuleArn": e.ruleArn(bus, name)})
}

func (e *Server) putTargets(w http.ResponseWriter, body map[string]any) {
	name, bus, ok := e.ruleRefLocked(w, body, "Rule", "rule")
	if !ok {
		return
	}
	list, _ := body["Targets"].([]any)
	if len(list) == 0 || len(list) > 100 {
		eventsError(w, http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length between 1 and 100")
		return
	}
	var targets []Target
	for i, item := range list {
		m, _ := item.(map[string]any)
		id, _ := m["Id"].(string)
		arn, _ := m["Arn"].(string)
		if msg := checkMember(fmt.Sprintf("targets.%d.member.id", i+1), id, ruleNamePattern, 64); msg != "" {
			eventsError(w, http.StatusBadRequest, "ValidationException", msg)
			return
		}
		if msg := checkMember(fmt.Sprintf("targets.%d.member.arn", i+1), arn, nil, 1600); msg != "" {
			eventsError(w, http.StatusBadRequest, "ValidationException", msg)
			return
		}
		if !arnPattern.MatchString(arn) {
			eventsError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("Parameter %s is not valid. Reason: Provided Arn is not in correct format.", arn))
			return
		}
		targets = append(targets, Target{ID: id, Arn: arn})
	}
	rule := e.buses[bus][name]
	if rule == nil {
		eventsError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Rule %s does not exist on EventBus %s.", name, bus))
		return
	}
	type failed struct{ TargetId, ErrorCode, ErrorMessage string }
	out := struct {
		FailedEntryCount int
		FailedEntries    []failed
	}{FailedEntries: []failed{}}
	var accepted []Target
	for _, t := range targets {
		if e.opts.RejectTarget != nil {
			if code, msg := e.opts.RejectTarget(name, t); code != "" {
				out.FailedEntries = append(out.FailedEntries, failed{t.ID, code, msg})
				continue
			}
		}
		accepted = append(accepted, t)
	}
	merged := append([]Target(nil), rule.Targets...)
	for _, t := range accepted {
		if i := targetIndex(merged, t.ID); i >= 0 {
			merged[i] = t
		} else {
			merged = append(merged, t)
		}
	}
	if len(merged) > 5 {
		eventsError(w, http.StatusBadRequest, "LimitExceededException", fmt.Sprintf("The requested resource exceeds the maximum number allowed: rule %s would have %d targets, at most 5.", name, len(merged)))
		return
	}
	rule.Targets = merged
	out.FailedEntryCount = len(out.FailedEntries)
	awstest.WriteJSON(w, eventsJSON, http.StatusOK, out)
}

func targetIndex(ts []Target, id string) int {
	for i, t := range ts {
		if t.ID == id {
			return i
		}
	}
	return -1
}

// busLocked resolves a request's EventBusName (a name or an ARN; absent
// means the default bus) to a bus name, or says why it is not valid.
// ruleRefLocked reads and checks the rule name (body member key, API member
// member) and the bus of a rule request; it answers the validation error
// itself when one fails.
func (e *Server) ruleRefLocked(w http.ResponseWriter, body map[string]any, key, member string) (name, bus string, ok bool) {
	name, _ = body[key].(string)
	msg := checkMember(member, name, ruleNamePattern, 64)
	if msg == "" {
		bus, msg = e.busLocked(body)
	}
	if msg != "" {
		eventsError(w, http.StatusBadRequest, "ValidationException", msg)
		return "", "", false
	}
	return name, bus, true
}

func (e *Server) busLocked(body map[string]any) (string, string) {
	ref, ok := body["EventBusName"].(string)
	if !ok {
		return "default", ""
	}
	if msg := checkMember("eventBusName", ref, nil, 1600); msg != "" {
		return "", msg
	}
	m := busRefPattern.FindStringSubmatch(ref)
	if m == nil {
		return "", fmt.Sprintf("1 validation error detected: Value '%s' at 'eventBusName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", ref, busRefPattern)
	}
	return m[2], ""
}

// checkMember checks a string member against the API's length limits and
// pattern (nil for none), in AWS's words.
func checkMember(member, v string, pattern *regexp.Regexp, max int) string {
	switch {
	case v == "":
		return fmt.Sprintf("1 validation error detected: Value '' at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", member)
	case len(v) > max:
		return fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", v, member, max)
	case pattern != nil && !pattern.MatchString(v):
		return fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", v, member, pattern)
	}
	return ""
}

// checkEventPattern says why an event pattern is not one EventBridge takes
// ("" when it is): it must be a JSON object, each of whose members is an
// object of the same kind or a non-empty array of match values.
func checkEventPattern(text string) string {
	if len(text) > 4096 {
		return "Event pattern is longer than 4096 characters."
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "Filter is not valid JSON: " + err.Error()
	}
	if dec.More() {
		return "Filter is not valid JSON: text after the pattern"
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return "Filter is not an object"
	}
	return checkPatternObject(obj)
}

func checkPatternObject(obj map[string]any) string {
	for k, v := range obj {
		switch v := v.(type) {
		case map[string]any:
			if msg := checkPatternObject(v); msg != "" {
				return msg
			}
		case []any:
			if len(v) == 0 {
				return fmt.Sprintf("Empty arrays are not allowed (%q)", k)
			}
		default:
			return fmt.Sprintf("%q must be an object or an array", k)
		}
	}
	return ""
}

func (e *Server) arn(resource string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:%s", e.opts.Region, e.opts.Account, resource)
}

// ruleArn is the ARN EventBridge gives a rule: the bus is in it unless it
// is the default one.
func (e *Server) ruleArn(bus, name string) string {
	if bus == "default" {
		return e.arn("rule/" + name)
	}
	return e.arn("rule/" + bus + "/" + name)
}

// eventsError answers the way EventBridge's JSON 1.1 protocol does.
func eventsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	awstest.WriteJSON(w, eventsJSON, status, map[string]string{"__type": code, "message": msg})
}
