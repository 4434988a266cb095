package testkit

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"
)

func TestPostgresHasLogicalWAL(t *testing.T) {
	pg := StartPostgres(t, PostgresOptions{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
}

func TestKinesisEmulatorRoundTrip(t *testing.T) {
	k := StartKinesis(t)
	c := KinesisClient(t, k.URL)
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
