// Package orderedbus is a small client for PutEvents on EventBridge's ordered
// custom bus (the "EventBridgeV2" API, version 2025-05-15). The Go SDK has no
// module for that API on the module proxy, so this package speaks its
// protocol itself: Smithy rpcv2Cbor (a CBOR body POSTed to
// /service/AWSEventsV2/operation/PutEvents), signed with SigV4 for the
// service name "events", sent to the bus owner's account endpoint
// (https://{account}.eventsv2.{region}.amazonaws.com).
//
// Why the ordered bus: its FIFO subscribers deliver in order per
// SystemMetadata.EventGroupId and it drops a repeat of a DeduplicationId
// seen within five minutes, answering SuccessCode DEDUPLICATED. With the
// group = the row's key and the deduplication id = lsn:seq, consumers get
// order per row and repeats from retries and restarts suppressed.
//
// The client makes one attempt per call; the caller's publisher retries
// (it knows which entries of a request failed and keeps per-group order).
// Errors are smithy.APIError values with the service's error names
// (ThrottlingException, InternalException, ...) and fault, so the same
// classification as for the classic bus applies.
package orderedbus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// Limits of the API's PutEvents (from its Smithy model).
const (
	MaxEntries   = 100 // entries per request
	MaxIDBytes   = 128 // EventGroupId and DeduplicationId
	signingName  = "events"
	serviceShape = "AWSEventsV2"
	// EndpointEnv overrides the endpoint, as AWS_ENDPOINT_URL_<SERVICE> does
	// for the SDK's generated clients.
	EndpointEnv = "AWS_ENDPOINT_URL_EVENTBRIDGEV2"
)

// busARN is the model's EventBusArn pattern.
var busARN = regexp.MustCompile(`^arn:aws(-[a-z0-9]+)*:events:([a-z][a-z0-9]*(-[a-z0-9]+)*):([0-9]{12}):event-busv2/[A-Za-z0-9][.\-_A-Za-z0-9]{0,255}/[a-z0-9]{25}$`)

// IsBusARN reports whether s names an ordered bus (an event-busv2 ARN).
func IsBusARN(s string) bool { return busARN.MatchString(s) }

// Entry is one event to publish.
type Entry struct {
	Source, DetailType, Detail string
	Resources                  []string
	Time                       time.Time // zero: the service's receive time
	EventGroupID               string    // FIFO order is kept per group
	DeduplicationID            string    // repeats within the window are dropped
}

// Result is the outcome of one entry, at the entry's index.
type Result struct {
	EventID, SequenceNumber string
	SuccessCode             string // PUBLISHED or DEDUPLICATED on success
	ErrorCode, ErrorMessage string // set when the entry failed
}

// Success codes.
const (
	Published    = "PUBLISHED"
	Deduplicated = "DEDUPLICATED"
)

// OK reports whether the entry was accepted, as new or as a repeat.
func (r Result) OK() bool { return r.ErrorCode == "" }

// Output is the answer to a PutEvents call.
type Output struct {
	FailedEntryCount int
	Entries          []Result
}

// Client sends PutEvents requests to one ordered bus.
type Client struct {
	bus, region, endpoint string
	creds                 aws.CredentialsProvider
	http                  aws.HTTPClient
	signer                *v4.Signer
	now                   func() time.Time
}

// New returns a client for the bus ARN, with cfg's region, credentials and
// HTTP client. The endpoint is, in order: AWS_ENDPOINT_URL_EVENTBRIDGEV2,
// cfg.BaseEndpoint, or the bus account's regional endpoint.
func New(cfg aws.Config, bus string) (*Client, error) {
	m := busARN.FindStringSubmatch(bus)
	if m == nil {
		return nil, fmt.Errorf("ordered bus: %q is not an event-busv2 ARN (arn:aws:events:REGION:ACCOUNT:event-busv2/NAME/ID)", bus)
	}
	region, account := m[2], m[4]
	endpoint := os.Getenv(EndpointEnv)
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	if endpoint == "" {
		suffix := "amazonaws.com"
		if strings.HasPrefix(region, "cn-") {
			suffix = "amazonaws.com.cn"
		}
		endpoint = "https://" + account + ".eventsv2." + region + "." + suffix
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	if cfg.Credentials == nil {
		return nil, errors.New("ordered bus: no AWS credentials configured")
	}
	return &Client{bus: bus, region: region, endpoint: strings.TrimRight(endpoint, "/"), creds: cfg.Credentials, http: hc,
		signer: v4.NewSigner(), now: time.Now}, nil
}

// GroupID maps a row key to an EventGroupId: the key itself when it fits,
// else "sha256:" and its hash, so long composite keys still get one group
// each.
func GroupID(key string) string {
	if key != "" && len(key) <= MaxIDBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PutEvents publishes entries (1 to MaxEntries) in one request.
func (c *Client) PutEvents(ctx context.Context, entries []Entry) (*Output, error) {
	if len(entries) == 0 || len(entries) > MaxEntries {
		return nil, fmt.Errorf("ordered bus: %d entries in one request, want 1 to %d", len(entries), MaxEntries)
	}
	for i, e := range entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("ordered bus: entry %d: %w", i, err)
		}
	}
	body := encodeRequest(c.bus, entries)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/service/"+serviceShape+"/operation/PutEvents", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ordered bus: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/cbor")
	req.Header.Set("Accept", "application/cbor")
	req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("ordered bus: credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), signingName, c.region, c.now()); err != nil {
		return nil, fmt.Errorf("ordered bus: sign: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ordered bus: PutEvents: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("ordered bus: PutEvents: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp.StatusCode, raw)
	}
	out, err := decodeOutput(raw)
	if err != nil {
		return nil, fmt.Errorf("ordered bus: PutEvents: %w", err)
	}
	if len(out.Entries) != len(entries) {
		return nil, fmt.Errorf("ordered bus: PutEvents answered %d entries for %d", len(out.Entries), len(entries))
	}
	return out, nil
}

func (e *Entry) check() error {
	switch {
	case e.Source == "" || len(e.Source) > 256:
		return fmt.Errorf("source of %d bytes, want 1 to 256", len(e.Source))
	case e.DetailType == "" || len(e.DetailType) > 128:
		return fmt.Errorf("detail type of %d bytes, want 1 to 128", len(e.DetailType))
	case len(e.EventGroupID) > MaxIDBytes || len(e.DeduplicationID) > MaxIDBytes:
		return fmt.Errorf("event group or deduplication id over %d bytes", MaxIDBytes)
	case e.DeduplicationID != "" && strings.TrimSpace(e.DeduplicationID) == "":
		return errors.New("deduplication id is all whitespace")
	case len(e.Resources) > 100:
		return fmt.Errorf("%d resources, want at most 100", len(e.Resources))
	}
	return nil
}

// decodeError turns an error answer into a smithy.APIError with the error
// shape's name as code (the "__type" member, namespace stripped).
func decodeError(status int, raw []byte) error {
	code, msg := "", ""
	if v, err := decodeMap(raw); err == nil {
		code, msg = str(v["__type"]), str(v["message"])
		if msg == "" {
			msg = str(v["Message"])
		}
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code = http.StatusText(status)
	}
	fault := smithy.FaultClient
	if status >= 500 {
		fault = smithy.FaultServer
	}
	return fmt.Errorf("ordered bus: PutEvents: HTTP %d: %w", status, &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault})
}
