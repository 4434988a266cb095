package kinesistest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

func TestKinesisEmulatorRoundTrip(t *testing.T) {
	k := StartEmulator(t)
	c := Client(t, k.URL)
	CreateStream(t, c, "kit", 2)
	ctx := context.Background()
	for _, pk := range []string{"a", "b", "c"} {
		if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("kit"), PartitionKey: aws.String(pk), Data: []byte(pk)}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, recs := range ReadAll(t, c, "kit") {
		n += len(recs)
	}
	if n != 3 {
		t.Fatalf("read %d records, want 3", n)
	}
}
