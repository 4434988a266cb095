package localbus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/walbridge/walbridge/shared/backoff"
)

// RetryPolicy governs deliveries to HTTP targets, like a target's retry
// policy in EventBridge (whose defaults, 185 retries over 24 hours, are far
// longer than a developer wants to wait). Zero fields take the defaults.
type RetryPolicy struct {
	// MaxAttempts is the most POSTs of one event, the first included
	// (default 5).
	MaxAttempts int
	// MaxAge is how long after acceptance an event may still be retried
	// (default 1 minute).
	MaxAge time.Duration
	// BaseDelay and MaxDelay shape the backoff: the wait before retry n
	// (from 0) is uniformly random in [0, min(MaxDelay, BaseDelay·2^n))
	// (defaults 200 ms and 10 s).
	BaseDelay, MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.MaxAge <= 0 {
		p.MaxAge = time.Minute
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p
}

// Delivery is the outcome of sending one event to one HTTP target.
type Delivery struct {
	EventID  string
	Rule     string
	Target   string // the target's Id
	URL      string
	Attempts int
	// Delivered is true when the target answered 2xx; otherwise Err says
	// why the bus gave up.
	Delivered bool
	Err       string
	// Result is a function target's answer: what the handler returned.
	Result string
}

// Deliveries returns the finished deliveries to HTTP targets so far (the
// last Options.MaxRecords), in the order they finished.
func (b *Bus) Deliveries() []Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Delivery(nil), b.deliveries...)
}

// worker delivers one HTTP target's events, in order.
type worker struct {
	rule   string
	target Target
	queue  chan job
}

// job is one event waiting for delivery.
type job struct {
	id       string
	body     []byte
	accepted time.Time
}

// enqueue hands an event to a target's worker without waiting: a full
// queue, or a closed bus, drops it.
func (b *Bus) enqueue(w *worker, j job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.finishLocked(w, j, 0, false, "bus closed before delivery", "")
		return
	}
	select {
	case w.queue <- j:
	default:
		b.finishLocked(w, j, 0, false, fmt.Sprintf("queue full (%d events waiting)", cap(w.queue)), "")
	}
}

func (b *Bus) run(w *worker) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case j := <-w.queue:
			b.deliver(w, j)
		}
	}
}

// deliver POSTs one event until it is delivered, fails for good, or the
// retry policy runs out.
func (b *Bus) deliver(w *worker, j job) {
	p := b.opts.Retry
	var body []byte // the event as the target takes it, once resolved: attempts after a failed post reuse it
	for attempt := 1; ; attempt++ {
		var err error
		if body == nil {
			body, err = b.resolve(w.target, j.body)
		}
		var answer string
		retry := true
		if err == nil {
			answer, retry, err = b.post(w.target, body)
		}
		if err == nil {
			b.finish(w, j, attempt, true, "", answer)
			return
		}
		if b.ctx.Err() != nil {
			b.finish(w, j, attempt, false, "bus closed before delivery", "")
			return
		}
		if !retry {
			b.finish(w, j, attempt, false, err.Error()+" (not retried)", "")
			return
		}
		if attempt >= p.MaxAttempts {
			b.finish(w, j, attempt, false, fmt.Sprintf("%v; gave up after %d attempts", err, attempt), "")
			return
		}
		d := backoff.Policy{Base: p.BaseDelay, Max: p.MaxDelay}.Delay(attempt - 1)
		if time.Since(j.accepted)+d > p.MaxAge {
			b.finish(w, j, attempt, false, fmt.Sprintf("%v; gave up: the event would be older than %v", err, p.MaxAge), "")
			return
		}
		b.logf("delivery: event %s → target %s (rule %s): attempt %d failed: %v; retrying in %v", j.id, w.target, w.rule, attempt, err, d.Round(time.Millisecond))
		if !backoff.Sleep(b.ctx, d) {
			b.finish(w, j, attempt, false, "bus closed before delivery", "")
			return
		}
	}
}

// resolve gives the event as the target asked for it: with its claim-check
// references replaced by their values, or as it is.
func (b *Bus) resolve(t Target, body []byte) ([]byte, error) {
	if !t.Resolve || b.opts.Resolve == nil || !bytes.Contains(body, []byte(`"s3":`)) {
		return body, nil
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	detail, err := b.opts.Resolve(b.ctx, ev["detail"])
	if err != nil {
		return nil, fmt.Errorf("resolve claim-check references: %w", err)
	}
	ev["detail"] = detail
	return json.Marshal(ev)
}

// post sends an event once. retry says whether a failure is worth another
// attempt: no answer, a 5xx or a 429, as EventBridge retries, or a
// function's error, as Lambda retries an asynchronous invocation. answer is
// a function target's answer.
func (b *Bus) post(target Target, body []byte) (answer string, retry bool, err error) {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the "Post URL:" prefix; the log names the target
		}
		return "", true, err
	}
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	io.Copy(io.Discard, resp.Body) // lets the connection be reused
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		if !target.Function {
			return "", false, nil
		}
		if err := functionError(got); err != nil {
			return "", true, err
		}
		return shorten(string(got), 200), false, nil
	case s == http.StatusTooManyRequests || s >= 500:
		return "", true, fmt.Errorf("HTTP %s%s", resp.Status, functionAnswer(target, got))
	default:
		return "", false, fmt.Errorf("HTTP %s%s", resp.Status, functionAnswer(target, got))
	}
}

// functionError reads a function's answer: a handler that threw or
// returned an error is answered, under the emulator, with Lambda's
// {"errorType", "errorMessage"} object (the emulator drops the
// X-Amz-Function-Error header Lambda adds), which is an error here.
func functionError(answer []byte) error {
	var e struct {
		Type    string  `json:"errorType"`
		Message *string `json:"errorMessage"`
	}
	if json.Unmarshal(answer, &e) != nil || e.Message == nil {
		return nil
	}
	if e.Type == "" {
		e.Type = "Error"
	}
	return errors.New("function error: " + e.Type + ": " + shorten(*e.Message, 300))
}

// functionAnswer is what the emulator said with a failed invocation (a
// timeout, a crashed bootstrap), for the delivery log.
func functionAnswer(t Target, answer []byte) string {
	if !t.Function || len(bytes.TrimSpace(answer)) == 0 {
		return ""
	}
	return ": " + shorten(strings.TrimSpace(string(answer)), 300)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (b *Bus) finish(w *worker, j job, attempts int, ok bool, why, result string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked(w, j, attempts, ok, why, result)
}

// finishLocked records and logs a delivery's outcome; b.mu is held.
// result is a function target's answer.
func (b *Bus) finishLocked(w *worker, j job, attempts int, ok bool, why, result string) {
	d := Delivery{EventID: j.id, Rule: w.rule, Target: w.target.ID, URL: w.target.URL, Attempts: attempts, Delivered: ok, Err: why, Result: result}
	b.deliveries = appendBounded(b.deliveries, d, b.opts.MaxRecords)
	for _, w := range b.watchers {
		if w.Delivery != nil {
			w.Delivery(d)
		}
	}
	if ok {
		returned := ""
		if w.target.Function {
			returned = "; it returned " + result
		}
		b.logf("delivery: event %s → target %s (rule %s): delivered on attempt %d%s", j.id, w.target, w.rule, attempts, returned)
		return
	}
	b.logf("delivery: event %s → target %s (rule %s): NOT DELIVERED after %d attempts: %s", j.id, w.target, w.rule, attempts, why)
}
