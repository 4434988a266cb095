// Package sqstest is an in-test Amazon SQS endpoint in the JSON protocol
// (POST /, X-Amz-Target AmazonSQS.<Operation>) that the real aws-sdk-go-v2
// sqs client speaks (BaseEndpoint or AWS_ENDPOINT_URL_SQS): CreateQueue,
// GetQueueAttributes, ReceiveMessage, DeleteMessage and
// ChangeMessageVisibility, with visibility timeouts, receipt handles and MD5
// digests of bodies. It keeps an awstest.Log of every call, and Fail makes
// an operation answer with an error.
package sqstest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/walbridge/walbridge/shared/awstest"
)

// Options shapes a Server. The zero value is account 000000000000 in
// us-east-1, with SQS's default visibility timeout of 30 seconds.
type Options struct {
	// Account is the account in queue URLs and ARNs, Region the region in
	// queue ARNs (defaults 000000000000, us-east-1).
	awstest.Place
	// VisibilityTimeout is the queues' default visibility timeout (30s).
	VisibilityTimeout time.Duration
	// Log receives the calls; nil gives the fake a Log of its own.
	Log *awstest.Log
}

// Server is an in-process SQS endpoint speaking the JSON protocol that
// aws-sdk-go-v2's sqs client uses (POST /, Content-Type
// application/x-amz-json-1.0, X-Amz-Target AmazonSQS.<Operation>). It serves
// CreateQueue (idempotent for the same attributes, QueueNameExists for
// others; names checked as SQS does), GetQueueAttributes (QueueArn and the
// counts), and ReceiveMessage, DeleteMessage and ChangeMessageVisibility on
// queues made with CreateQueue (the call or the method) and filled with
// Send. Like SQS, a received message is invisible for the visibility
// timeout and gets a new receipt handle at each receive; only the newest
// handle deletes it (an older one is accepted and does nothing); MD5OfBody
// is the body's MD5, which the SDK checks. It never holds a long poll:
// WaitTimeSeconds is accepted and an empty queue answers at once. Errors
// are the JSON protocol's (__type, with the query-compatible
// X-Amzn-Query-Error header).
type Server struct {
	awstest.Endpoint // AWS_ENDPOINT_URL_SQS
	opts             Options

	mu     sync.Mutex
	queues map[string]*queue // by URL
	nextID int
}

type queue struct {
	name     string
	attrs    map[string]string // as created
	messages []*message        // in sending order; deleted ones removed
}

// message is one message in a queue.
type message struct {
	id, body     string
	sent         time.Time
	firstReceive time.Time
	receives     int
	handle       string // newest receipt handle; "" before the first receive
	invisible    time.Time
}

// Message is a message still in a queue, for assertions.
type Message struct {
	MessageID string
	Body      string
	// Receives is how often it was received (ApproximateReceiveCount).
	Receives int
	// InFlight is true while it is received and its visibility timeout has
	// not run out.
	InFlight bool
}

// Start starts a Server for the test and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	q := New(opts)
	tb.Cleanup(q.Close)
	return q
}

// New starts a Server; the caller must Close it.
func New(opts Options) *Server {
	opts.Place = opts.Place.WithDefaults()
	if opts.VisibilityTimeout <= 0 {
		opts.VisibilityTimeout = 30 * time.Second
	}
	q := &Server{opts: opts, queues: map[string]*queue{}}
	q.Serve(q.serve, opts.Log)
	return q
}

// CreateQueue makes an empty queue (unless it exists) and returns its URL,
// without a call.
func (q *Server) CreateQueue(name string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	url := q.queueURL(name)
	if q.queues[url] == nil {
		q.queues[url] = &queue{name: name}
	}
	return url
}

// Queues returns the URLs of the queues, sorted.
func (q *Server) Queues() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.queues))
	for url := range q.queues {
		out = append(out, url)
	}
	sort.Strings(out)
	return out
}

func (q *Server) queueURL(name string) string {
	return fmt.Sprintf("%s/%s/%s", q.URL, q.opts.Account, name)
}

// Send puts a message in the queue at queueURL, as another sender would
// (it is not a call and is not logged), and returns its message id.
func (q *Server) Send(queueURL, body string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	qu := q.queues[queueURL]
	if qu == nil {
		panic("sqstest: Send to unknown queue " + queueURL)
	}
	q.nextID++
	m := &message{id: fmt.Sprintf("0e1f2a3b-0000-4000-8000-%012d", q.nextID), body: body, sent: time.Now()}
	qu.messages = append(qu.messages, m)
	return m.id
}

// Messages returns the messages still in the queue at queueURL, in sending
// order.
func (q *Server) Messages(queueURL string) []Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Message
	if qu := q.queues[queueURL]; qu != nil {
		now := time.Now()
		for _, m := range qu.messages {
			out = append(out, Message{MessageID: m.id, Body: m.body, Receives: m.receives, InFlight: now.Before(m.invisible)})
		}
	}
	return out
}

const sqsJSON = "application/x-amz-json-1.0"

func (q *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "AmazonSQS.")
	if r.Method != http.MethodPost || !ok || !strings.HasPrefix(r.Header.Get("Content-Type"), sqsJSON) {
		sqsError(w, "InvalidAction", "AWS.SimpleQueueService.InvalidAction", fmt.Sprintf("not a JSON-protocol SQS request (%s %s, X-Amz-Target %q)", r.Method, r.URL.Path, target))
		return
	}
	body, params, err := awstest.ReadBody(r.Body)
	q.Log.Add(awstest.Call{Service: "sqs", Op: op, Params: params})
	if err != nil {
		sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "request body is not JSON: "+err.Error())
		return
	}
	if f, ok := q.Failure(op); ok {
		sqsError(w, f.Code, f.Code, f.Message)
		return
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	url, _ := body["QueueUrl"].(string)
	qu := q.queues[url]
	switch op {
	case "CreateQueue":
		q.create(w, body)
		return
	case "GetQueueAttributes", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility":
		if qu == nil {
			sqsError(w, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
			return
		}
	default:
		sqsError(w, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", op+" is not served by this fake")
		return
	}
	switch op {
	case "GetQueueAttributes":
		q.attributes(w, qu, body)
	case "ReceiveMessage":
		q.receive(w, qu, body)
	case "DeleteMessage":
		handle, _ := body["ReceiptHandle"].(string)
		i, m := qu.byHandle(handle)
		if m == nil {
			sqsError(w, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
			return
		}
		if m.handle == handle {
			qu.messages = append(qu.messages[:i], qu.messages[i+1:]...)
		}
		awstest.WriteJSON(w, sqsJSON, http.StatusOK, struct{}{})
	case "ChangeMessageVisibility":
		handle, _ := body["ReceiptHandle"].(string)
		secs, err := intMember(body, "VisibilityTimeout", -1)
		if err != nil || secs < 0 || secs > 43200 {
			sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "VisibilityTimeout must be between 0 and 43200")
			return
		}
		_, m := qu.byHandle(handle)
		if m == nil {
			sqsError(w, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
			return
		}
		if m.handle != handle || !time.Now().Before(m.invisible) {
			sqsError(w, "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "The message referred to is not in flight.")
			return
		}
		m.invisible = time.Now().Add(time.Duration(secs) * time.Second)
		awstest.WriteJSON(w, sqsJSON, http.StatusOK, struct{}{})
	}
}

// queueNamePattern is what SQS allows in a queue name, besides a FIFO
// queue's .fifo suffix.
var queueNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (q *Server) create(w http.ResponseWriter, body map[string]any) {
	name, _ := body["QueueName"].(string)
	attrs := map[string]string{}
	if m, ok := body["Attributes"].(map[string]any); ok {
		for k, v := range m {
			attrs[k], _ = v.(string)
		}
	}
	base := name
	if attrs["FifoQueue"] == "true" {
		var ok bool
		if base, ok = strings.CutSuffix(name, ".fifo"); !ok {
			sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.")
			return
		}
	}
	if len(name) > 80 || !queueNamePattern.MatchString(base) {
		sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
		return
	}
	url := q.queueURL(name)
	if qu := q.queues[url]; qu != nil {
		if !maps.Equal(qu.attrs, attrs) {
			sqsError(w, "QueueNameExists", "QueueAlreadyExists", "A queue already exists with the same name and a different value for attribute(s)")
			return
		}
	} else {
		q.queues[url] = &queue{name: name, attrs: attrs}
	}
	awstest.WriteJSON(w, sqsJSON, http.StatusOK, map[string]string{"QueueUrl": url})
}

// queueAttributeNames are the attribute names GetQueueAttributes takes.
var queueAttributeNames = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range sqstypes.QueueAttributeName("").Values() {
		m[string(n)] = true
	}
	return m
}()

func (q *Server) attributes(w http.ResponseWriter, qu *queue, body map[string]any) {
	all := map[string]string{
		"QueueArn":                              fmt.Sprintf("arn:aws:sqs:%s:%s:%s", q.opts.Region, q.opts.Account, qu.name),
		"VisibilityTimeout":                     strconv.Itoa(int(q.opts.VisibilityTimeout / time.Second)),
		"ApproximateNumberOfMessages":           "0",
		"ApproximateNumberOfMessagesNotVisible": "0",
	}
	maps.Copy(all, qu.attrs)
	now := time.Now()
	n, inFlight := 0, 0
	for _, m := range qu.messages {
		if now.Before(m.invisible) {
			inFlight++
		} else {
			n++
		}
	}
	all["ApproximateNumberOfMessages"], all["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(n), strconv.Itoa(inFlight)
	out := map[string]string{}
	names, _ := body["AttributeNames"].([]any)
	for _, v := range names {
		name, _ := v.(string)
		switch {
		case name == "All":
			maps.Copy(out, all)
		case !queueAttributeNames[name]:
			sqsError(w, "InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute "+name+".")
			return
		case all[name] != "":
			out[name] = all[name]
		}
	}
	awstest.WriteJSON(w, sqsJSON, http.StatusOK, map[string]map[string]string{"Attributes": out})
}

// byHandle finds the message a receipt handle (current or older) belongs
// to. Handles are "<message id>#<receive count>".
func (qu *queue) byHandle(handle string) (int, *message) {
	id, _, ok := strings.Cut(handle, "#")
	if !ok {
		return -1, nil
	}
	for i, m := range qu.messages {
		if m.id == id && m.handle != "" {
			return i, m
		}
	}
	return -1, nil
}

func (q *Server) receive(w http.ResponseWriter, qu *queue, body map[string]any) {
	max, err := intMember(body, "MaxNumberOfMessages", 1)
	if err != nil || max < 1 || max > 10 {
		sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "Value for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10.")
		return
	}
	visibility := q.opts.VisibilityTimeout
	if secs, err := intMember(body, "VisibilityTimeout", -1); err != nil || secs > 43200 {
		sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "VisibilityTimeout must be between 0 and 43200")
		return
	} else if secs >= 0 {
		visibility = time.Duration(secs) * time.Second
	}
	if wait, err := intMember(body, "WaitTimeSeconds", 0); err != nil || wait < 0 || wait > 20 {
		sqsError(w, "InvalidParameterValue", "InvalidParameterValue", "WaitTimeSeconds must be between 0 and 20")
		return
	}
	attrs := wantsAttributes(body)
	type wireMessage struct {
		MessageID     string            `json:"MessageId"`
		ReceiptHandle string            `json:"ReceiptHandle"`
		MD5OfBody     string            `json:"MD5OfBody"`
		Body          string            `json:"Body"`
		Attributes    map[string]string `json:"Attributes,omitempty"`
	}
	var out struct {
		Messages []wireMessage `json:"Messages,omitempty"`
	}
	now := time.Now()
	for _, m := range qu.messages {
		if len(out.Messages) == max {
			break
		}
		if now.Before(m.invisible) {
			continue
		}
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.handle = m.id + "#" + strconv.Itoa(m.receives)
		m.invisible = now.Add(visibility)
		sum := md5.Sum([]byte(m.body))
		wm := wireMessage{MessageID: m.id, ReceiptHandle: m.handle, MD5OfBody: hex.EncodeToString(sum[:]), Body: m.body}
		if attrs {
			wm.Attributes = map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(m.receives),
				"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
				"SenderId":                         "AROAFAKELAMBDASERVICE:awslambda",
			}
		}
		out.Messages = append(out.Messages, wm)
	}
	awstest.WriteJSON(w, sqsJSON, http.StatusOK, out)
}

// wantsAttributes reports whether the request asks for system attributes
// (All, or any name: the fake then sends all it has).
func wantsAttributes(body map[string]any) bool {
	for _, k := range []string{"MessageSystemAttributeNames", "AttributeNames"} {
		if l, ok := body[k].([]any); ok && len(l) > 0 {
			return true
		}
	}
	return false
}

// intMember reads an integer member, def when it is absent.
func intMember(body map[string]any, name string, def int) (int, error) {
	v, ok := body[name]
	if !ok {
		return def, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s is not a number", name)
	}
	i, err := strconv.Atoi(n.String())
	return i, err
}

// sqsError answers the way SQS's JSON protocol does, with the query
// protocol's code in X-Amzn-Query-Error for query-compatible clients.
func sqsError(w http.ResponseWriter, code, queryCode, msg string) {
	w.Header().Set("X-Amzn-Query-Error", queryCode+";Sender")
	awstest.WriteJSON(w, sqsJSON, http.StatusBadRequest, map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}
