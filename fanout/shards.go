package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/walbridge/walbridge/shared/shardmap"
)

// shardRanges knows the hash key range of each shard a record comes from:
// a version 2 record holds changes of many keys, and the changes whose key
// hash lies outside its shard's range are not this shard's to publish (see
// package shardmap). A shard's range never changes, so each is listed once
// per stream and kept for the life of the process.
type shardRanges struct {
	api shardmap.Lister
	mu  sync.Mutex
	// known maps stream ARN, then shard id, to its range.
	known map[string]map[string]shardmap.Range
}

func newShardRanges(api shardmap.Lister) *shardRanges {
	return &shardRanges{api: api, known: map[string]map[string]shardmap.Range{}}
}

// Range is the hash key range of shard in the stream streamARN. A shard not
// yet known (the first record of the stream, or a shard born of a reshard
// since) lists the stream's shards again.
func (s *shardRanges) Range(ctx context.Context, streamARN, shard string) (shardmap.Range, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.known[streamARN][shard]; ok {
		return r, nil
	}
	m, err := shardmap.List(ctx, s.api, streamARN)
	if err != nil {
		return shardmap.Range{}, err
	}
	ranges := s.known[streamARN]
	if ranges == nil {
		ranges = map[string]shardmap.Range{}
		s.known[streamARN] = ranges
	}
	for _, sh := range m.All() {
		ranges[sh.ID] = sh.Range
	}
	r, ok := ranges[shard]
	if !ok {
		return shardmap.Range{}, fmt.Errorf("shard %s is not among the shards of stream %s", shard, streamARN)
	}
	return r, nil
}
