package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// TestStdoutAppliesPutEventsRules: poll -stdout refuses what EventBridge
// refuses, entry by entry, and prints only what it accepts.
func TestStdoutAppliesPutEventsRules(t *testing.T) {
	var out bytes.Buffer
	api := newStdoutAPI(&out, "", "")
	entry := func(detail string) types.PutEventsRequestEntry {
		return types.PutEventsRequestEntry{Source: aws.String("walbridge.database"), DetailType: aws.String("DatabaseEvent"), Detail: aws.String(detail)}
	}
	res, err := api.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		entry(`{"ok":1}`), entry(`[1,2]`), entry(`{"ok":2}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.FailedEntryCount != 1 || res.Entries[1].ErrorCode == nil || res.Entries[0].EventId == nil || res.Entries[2].EventId == nil {
		t.Fatalf("result %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"detail":{"ok":1}`) || !strings.Contains(lines[1], `"detail":{"ok":2}`) {
		t.Errorf("printed %q", lines)
	}
	if _, err := api.PutEvents(context.Background(), &eventbridge.PutEventsInput{}); err == nil {
		t.Error("an empty request was accepted")
	}
}
