package putrecords

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// Version 2 records (Config.Format "v2").
//
// A version 1 record holds one partition key's changes, so a burst of
// changes to distinct rows costs one record each, and a shard takes 1,000
// records a second. A version 2 record holds the queued changes of many
// keys that the shard map puts in one shard, each relation's shape once,
// zstd-compressed; it goes out with an ExplicitHashKey (its first key's
// hash) so that Kinesis puts it on that shard.
//
// What does not change: the per-key queues, and the rule that a key has at
// most one record in flight, so per-row order holds exactly as in version
// 1; a failed record is re-sent whole before anything later of its keys.
//
// Resharding. The map can be stale (a split or merge, which on-demand
// streams do by themselves): Kinesis then puts the record on the shard that
// owns its explicit hash key now, and PutRecords says which. Fanout, reading
// that shard, publishes the changes whose key hashes into the shard's range
// (a shard's range never changes) and drops the rest. The writer mirrors
// that exactly: it acknowledges the keys inside the landed shard's range and
// sends the others again after listing the shards afresh; they are still
// the oldest unacknowledged changes of their keys, so nothing later of those
// keys can overtake them. Each change is thus published once per landing on
// a shard that owns its key, never by two shards, and never out of order.
//
// Lambda's event source mapping keeps order per partition key, not per
// hash key: with version 2 its ParallelizationFactor must be 1 (the stack
// enforces it).

// v2Batch is a worker's scratch for building version 2 records.
type v2Batch struct {
	open  map[string]int // shard id -> index in recs of its record being filled
	items []item         // copies of the batch's items, which segments slice
	ends  []int          // each record's end in the arena
	raw   []byte
	rb    change.RecordBuilderV2
}

// encodeBody is encode for version 2: w.scratch gets a comma and c's body
// (change.AppendBody), w.shapeScratch c's shape when it has one. A change
// too large for a record of its own is fitted as encode does.
func (w *Writer) encodeBody(c *change.Change) error {
	limit := w.recordLimit(w.shape(c))
	var omitted int
	var err error
	w.scratch, omitted, err = w.memo.ShrinkBody(append(w.scratch[:0], ','), c, limit)
	if omitted == 0 && err == nil {
		return nil
	}
	return w.oversized(c, limit, omitted, err)
}

// shape is c's shape in w.shapeScratch (nil when c has none), encoded only
// when it is not the previous change's (Add's goroutine).
func (w *Writer) shape(c *change.Change) []byte {
	if !change.HasShape(c) {
		return nil
	}
	of := shapeOfChange(c)
	if of.id = w.lastShape.id; of != w.lastShape {
		w.shapeScratch = change.AppendShape(w.shapeScratch[:0], c)
		of.id = -1 // interned by Add
		w.lastShape = of
	}
	return w.shapeScratch
}

// shapeOf is what a change's shape is made of, with its columns by
// identity: Columns arrays are never written after they are made.
type shapeOf struct {
	database, schema, table string
	identity                change.Identity
	columns                 *change.Column
	n                       int
	id                      int32 // the interned id, once known; -1 before
}

func shapeOfChange(c *change.Change) shapeOf {
	of := shapeOf{database: c.Database, schema: c.Schema, table: c.Table, identity: c.Identity, n: len(c.Columns)}
	if len(c.Columns) > 0 {
		of.columns = &c.Columns[0]
	}
	return of
}

// internLocked returns the id of the shape def, adding it if new.
func (w *Writer) internLocked(def []byte) int32 {
	if id, ok := w.shapeIDs[string(def)]; ok { // no allocation for the lookup
		return id
	}
	id := int32(len(w.shapeDefs))
	s := string(def)
	w.shapeIDs[s] = id
	w.shapeDefs = append(w.shapeDefs, []byte(s))
	return id
}

// nextBatchV2 is nextBatch for version 2: ready keys, live ones first, are
// grouped by the shard the map gives their hash, and packed into one record
// per shard (more when one is full), within a request's limits. Sizes are
// counted uncompressed, so a record also fits the stream's record size if
// it does not compress.
func (w *Writer) nextBatchV2(b *batch) bool {
	v := &b.v2
	b.recs, v.items = b.recs[:0], v.items[:0]
	if v.open == nil {
		v.open = map[string]int{}
	}
	clear(v.open)
	if !w.lockReady() {
		return false
	}
	m := w.shards.Load()
	maxRecord := int(w.maxRecord.Load())
	total := 0
	for w.readyLen() > 0 {
		q := &w.ready
		if q.len() == 0 {
			q = &w.readyLow
		}
		kq := *q.at(0)
		shard := m.Owner(kq.hash).ID
		ri, ok := v.open[shard]
		var n, size int
		var shapes []int32
		if ok {
			r := &b.recs[ri]
			n, size, shapes = w.packV2Locked(kq, r.shapes, maxRecord-r.size, w.cfg.MaxChangesPerRecord-r.count, false)
			if n == 0 { // full: this shard starts another record
				delete(v.open, shard)
				ok = false
			}
		}
		if !ok {
			if len(b.recs) == MaxRecordsPerRequest {
				break
			}
			// The first change always fits a record of its own: Add made
			// sure of it.
			fixed := change.V2Overhead + len(kq.key)
			n, size, shapes = w.packV2Locked(kq, nil, maxRecord-fixed, w.cfg.MaxChangesPerRecord, true)
			size += fixed
		}
		if len(b.recs) > 0 && total+size > MaxRequestBytes {
			break
		}
		if !ok {
			ri = len(b.recs)
			v.open[shard] = ri
			b.recs = append(b.recs, record{shard: shard, hashKey: kq.hash.String()})
		}
		q.pop()
		kq.inReady, kq.inFlight = false, true
		r := &b.recs[ri]
		r.size += size
		r.count += n
		r.shapes = append(r.shapes, shapes...)
		first := len(v.items)
		v.items = append(v.items, kq.items[kq.head:kq.head+n]...)
		for i := first; i < len(v.items); i++ {
			v.items[i].end -= kq.start
		}
		r.segs = append(r.segs, segment{kq: kq, n: n, src: kq.buf[kq.start:kq.items[kq.head+n-1].end], items: v.items[first:len(v.items):len(v.items)]})
		total += size
	}
	for i := range b.recs {
		r := &b.recs[i]
		r.defs = r.defs[:0]
		for _, id := range r.shapes {
			r.defs = append(r.defs, w.shapeDefs[id])
		}
	}
	if w.readyLen() > 0 {
		w.work.Signal()
	}
	w.mu.Unlock()

	// Build outside the lock, for the same reason nextBatch copies outside
	// it: nothing rewrites the buffers of keys in flight.
	b.arena, v.ends = b.arena[:0], v.ends[:0]
	for i := range b.recs {
		r := &b.recs[i]
		v.raw = v.raw[:0]
		v.rb.Start(v.raw, r.defs)
		for _, sg := range r.segs {
			start := 0
			for _, it := range sg.items {
				ref := -1
				if it.shape >= 0 {
					ref = slices.Index(r.shapes, it.shape)
				}
				v.rb.AddBody(ref, sg.src[start+1:it.end])
				start = it.end
			}
		}
		v.raw = v.rb.Finish()
		if w.comp != nil {
			b.arena = w.comp.Compress(b.arena, v.raw)
		} else {
			b.arena = append(b.arena, v.raw...)
		}
		v.ends = append(v.ends, len(b.arena))
	}
	// Slice the records out once the arena has stopped growing (and moving).
	start := 0
	for i, end := range v.ends {
		b.recs[i].data = b.arena[start:end:end]
		start = end
	}
	return true
}

// packV2Locked chooses how many of kq's queued changes (at most most) fit
// in room bytes of a record whose shapes are have: each change costs its
// body, a shape reference, a separator, and its shape's definition if the
// record lacks it. It returns the count, their size and the shapes they
// add. first takes the first change whatever its size.
func (w *Writer) packV2Locked(kq *keyQueue, have []int32, room, most int, first bool) (n, size int, added []int32) {
	start := kq.start
	for _, it := range kq.items[kq.head:] {
		if n == most && !(first && n == 0) {
			break
		}
		cost := it.end - start + change.MaxShapeRef
		var def int32 = -1
		if it.shape >= 0 && !slices.Contains(have, it.shape) && !slices.Contains(added, it.shape) {
			def = it.shape
			cost += len(w.shapeDefs[it.shape]) + 1
		}
		if size+cost > room && !(first && n == 0) {
			break
		}
		size += cost
		n++
		start = it.end
		if def >= 0 {
			added = append(added, def)
		}
	}
	return n, size, added
}

// landedRanges is, for each accepted version 2 record that landed on
// another shard than predicted, the hash range of the shard it landed on
// (listing the shards again when the map does not know it). Version 1
// records and records that landed as predicted have no entry.
func (w *Writer) landedRanges(pending []record, results []types.PutRecordsResultEntry) map[int]shardmap.Range {
	var out map[int]shardmap.Range
	for i := range results {
		r := &pending[i]
		if r.hashKey == "" || results[i].ErrorCode != nil {
			continue
		}
		got := aws.ToString(results[i].ShardId)
		if got == r.shard {
			continue
		}
		if out == nil {
			out = map[int]shardmap.Range{}
		}
		s, ok := w.shards.Load().Shard(got)
		if !ok {
			w.refreshShards(got)
			s, ok = w.shards.Load().Shard(got)
		}
		if !ok {
			// Unknown even after listing: send every key again. Their
			// changes may then be published twice (from both landings),
			// which at-least-once allows; none is lost.
			out[i] = shardmap.Range{Start: shardmap.Hash{Hi: ^uint64(0), Lo: ^uint64(0)}, End: shardmap.Hash{}}
			continue
		}
		out[i] = s.Range
	}
	return out
}

// refreshShards lists the shards again, unless another worker already did
// since the map lacked shard, retrying until it succeeds or the writer
// stops.
func (w *Writer) refreshShards(shard string) {
	w.relist.Lock()
	defer w.relist.Unlock()
	if _, ok := w.shards.Load().Shard(shard); ok {
		return
	}
	for attempt := 0; ; attempt++ {
		m, err := shardmap.List(w.ctx, w.api, w.stream)
		if err == nil {
			w.shards.Store(m)
			w.m.shardMaps.Inc()
			w.log.Info("shard map refreshed", zap.Int("open_shards", len(m.Open())), zap.String("landed_on", shard))
			return
		}
		if w.ctx.Err() != nil {
			return
		}
		if attempt%10 == 0 {
			w.log.Warn("listing shards after a reshard failed; retrying", zap.Int("attempt", attempt+1), zap.Error(err))
		}
		if !backoff.Sleep(w.ctx, backoff.Policy{Base: w.cfg.RetryBase, Max: w.cfg.RetryMax}.Delay(attempt)) {
			return
		}
	}
}

// loadShards reads the first shard map, for Check.
func (w *Writer) loadShards(ctx context.Context) error {
	m, err := shardmap.List(ctx, w.api, w.stream)
	if err != nil {
		return fmt.Errorf("version 2 records need the shard map (the role needs kinesis:ListShards): %w", err)
	}
	w.shards.Store(m)
	return nil
}
