package awstest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// HTTPClient is what the SDK calls to send a request (aws.HTTPClient).
type HTTPClient interface {
	Do(*http.Request) (*http.Response, error)
}

// Recorder is an HTTP client for SDK clients that adds the JSON-protocol
// calls it passes on (those whose X-Amz-Target starts with TargetPrefix) to
// Log, the way the fakes log theirs, so that calls to an endpoint that keeps
// no log (the Kinesis emulator) appear in order with the fakes' calls.
// Other requests pass through unrecorded. Use it with
// config.WithHTTPClient or the client's Options.HTTPClient; the SDK's config
// loader refuses it while AWS_CA_BUNDLE is set (it adds the bundle only to
// its own buildable client), which endpoints on loopback don't need.
type Recorder struct {
	Log *Log
	// Service names the calls in the log ("kinesis").
	Service string
	// TargetPrefix selects the requests to record ("Kinesis_20131202.").
	TargetPrefix string
	// Next sends the requests.
	Next HTTPClient
}

// Do records the call (when it matches) and sends it on.
func (r Recorder) Do(req *http.Request) (*http.Response, error) {
	if op, ok := strings.CutPrefix(req.Header.Get("X-Amz-Target"), r.TargetPrefix); ok && req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(raw))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
		params := map[string]string{}
		if body, _, err := decodeBody(bytes.NewReader(raw)); err == nil {
			flatten(params, "", body)
		}
		r.Log.Add(Call{Service: r.Service, Op: op, Params: params})
	}
	return r.Next.Do(req)
}
