package main

import (
	"context"
	"crypto/rand"
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

// stdoutAPI stands in for EventBridge (poll -stdout): it accepts every entry
// and prints it, one JSON object per line, the way EventBridge delivers an
// event to a target.
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
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &eventbridge.PutEventsOutput{Entries: make([]types.PutEventsResultEntry, len(in.Entries))}
	for i, e := range in.Entries {
		t := time.Now()
		if e.Time != nil {
			t = *e.Time
		}
		resources := e.Resources
		if resources == nil {
			resources = []string{}
		}
		ev := putevents.Delivered{Version: "0", ID: newUUID(), DetailType: aws.ToString(e.DetailType), Source: aws.ToString(e.Source),
			Account: s.account, Time: t.UTC().Format("2006-01-02T15:04:05Z"), Region: s.region, Resources: resources,
			Detail: json.RawMessage(aws.ToString(e.Detail))}
		if err := s.enc.Encode(ev); err != nil {
			return nil, fmt.Errorf("print event: %w", err)
		}
		out.Entries[i] = types.PutEventsResultEntry{EventId: aws.String(ev.ID)}
	}
	return out, nil
}

// newUUID is a random (version 4) UUID, the form of EventBridge event ids.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
