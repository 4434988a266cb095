package shardmap_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/shardmap"
)

func TestHash(t *testing.T) {
	for _, key := range []string{"", "a", "public.users/1", "sha256:" + hex.EncodeToString(make([]byte, 32))} {
		sum := md5.Sum([]byte(key))
		want, _ := new(big.Int).SetString(hex.EncodeToString(sum[:]), 16)
		h := shardmap.KeyHash([]byte(key))
		if h.String() != want.String() {
			t.Errorf("%q: hash %s, want %s", key, h, want)
		}
		back, err := shardmap.ParseHash(h.String())
		if err != nil || back != h {
			t.Errorf("%q: parse %s: %v %v", key, h, back, err)
		}
	}
	for _, bad := range []string{"", "-1", "x", "340282366920938463463374607431768211456"} {
		if _, err := shardmap.ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
	top, err := shardmap.ParseHash("340282366920938463463374607431768211455")
	if err != nil || top != (shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}) {
		t.Errorf("2^128-1: %v %v", top, err)
	}
}

func TestRangeAndOwner(t *testing.T) {
	h := func(hi uint64) shardmap.Hash { return shardmap.Hash{Hi: hi} }
	m, err := shardmap.New([]shardmap.Shard{
		{ID: "parent", Range: shardmap.Range{Start: h(0), End: shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}}},
		{ID: "low", Range: shardmap.Range{Start: h(0), End: shardmap.Hash{Hi: 99, Lo: ^uint64(0)}}, Open: true},
		{ID: "high", Range: shardmap.Range{Start: h(100), End: shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}}, Open: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h    shardmap.Hash
		want string
	}{{h(0), "low"}, {shardmap.Hash{Hi: 99, Lo: ^uint64(0)}, "low"}, {h(100), "high"}, {shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}, "high"}} {
		if got := m.Owner(tc.h).ID; got != tc.want {
			t.Errorf("owner of %s: %s, want %s", tc.h, got, tc.want)
		}
	}
	low, _ := m.Shard("low")
	if low.Range.Contains(h(100)) || !low.Range.Contains(h(5)) {
		t.Errorf("low's range: %+v", low.Range)
	}
	if p, ok := m.Shard("parent"); !ok || p.Open || len(m.Open()) != 2 {
		t.Errorf("closed parent: %+v %v, open %d", p, ok, len(m.Open()))
	}
	if _, err := shardmap.New([]shardmap.Shard{{ID: "closed"}}); err == nil {
		t.Error("a map without an open shard was accepted")
	}
}

// TestMatchesKinesis checks the map's predictions against the emulator's
// routing, by partition key and by explicit hash key, before and after a
// split.
func TestMatchesKinesis(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	c := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, c, "routing", 3)
	ctx := context.Background()
	check := func(m *shardmap.Map) {
		t.Helper()
		var entries []types.PutRecordsRequestEntry
		var want []string
		for i := range 40 {
			key := fmt.Sprintf("public.t/%d", i)
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte("x")})
			want = append(want, m.Owner(shardmap.KeyHash([]byte(key))).ID)
			// The same record sent by the hash of another key.
			other := shardmap.KeyHash([]byte(fmt.Sprint("other", i)))
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), ExplicitHashKey: aws.String(other.String()), Data: []byte("x")})
			want = append(want, m.Owner(other).ID)
		}
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("routing"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range out.Records {
			if aws.ToString(r.ShardId) != want[i] {
				t.Errorf("record %d (%s): shard %s, map says %s", i, aws.ToString(entries[i].PartitionKey), aws.ToString(r.ShardId), want[i])
			}
		}
	}
	m, err := shardmap.List(ctx, c, "routing")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Open()) != 3 {
		t.Fatalf("%d open shards, want 3", len(m.Open()))
	}
	check(m)

	first := m.Open()[0]
	mid := shardmap.KeyHash([]byte("split here"))
	if !first.Range.Contains(mid) {
		mid = first.Range.Start
		mid.Lo++
	}
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("routing"), ShardToSplit: aws.String(first.ID), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	kinesistest.WaitActive(t, c, "routing")
	after, err := shardmap.List(ctx, c, "routing")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Open()) != 4 {
		t.Fatalf("after a split: %d open shards, want 4", len(after.Open()))
	}
	if s, ok := after.Shard(first.ID); !ok || s.Open {
		t.Fatalf("split parent %s: %+v %v", first.ID, s, ok)
	}
	check(after)
}
