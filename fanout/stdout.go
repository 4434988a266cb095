package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/walbridge/walbridge/shared/putevents"
)

// stdoutAPI is PutEvents for "fanout poll -stdout": it applies EventBridge's
// PutEvents rules (package putevents, as the local bus does) and prints each
// accepted entry, one JSON object per line, the way EventBridge delivers it
// to a target. An entry EventBridge would refuse fails here the same way.
type stdoutAPI struct {
	mu      sync.Mutex
	enc     *json.Encoder
	region  string
	account string
}

func newStdoutAPI(w io.Writer, region, account string) *stdoutAPI {
	if region == "" {
		region = "us-east-1"
	}
	if account == "" {
		account = "000000000000"
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &stdoutAPI{enc: enc, region: region, account: account}
}

// PutEvents implements publish.API.
func (s *stdoutAPI) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	entries := make([]putevents.Entry, len(in.Entries))
	for i := range in.Entries {
		entries[i] = putevents.FromSDK(in.Entries[i])
	}
	if err := putevents.CheckRequest(entries, putevents.MaxRequestBytes); err != nil {
		return nil, fmt.Errorf("PutEvents (stdout): %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &eventbridge.PutEventsOutput{Entries: make([]types.PutEventsResultEntry, len(in.Entries))}
	now := time.Now()
	for i, e := range entries {
		if code, msg := putevents.CheckEntry(e); code != "" {
			out.Entries[i] = types.PutEventsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String(msg)}
			out.FailedEntryCount++
			continue
		}
		ev := putevents.Deliver(e, putevents.NewEventID(), s.region, s.account, now)
		if err := s.enc.Encode(ev); err != nil {
			return nil, fmt.Errorf("print event: %w", err)
		}
		out.Entries[i] = types.PutEventsResultEntry{EventId: aws.String(ev.ID)}
	}
	return out, nil
}
