// Package shardmap knows where Kinesis puts a record: the 128-bit hash of a
// partition key (MD5, read as a big-endian unsigned integer), the hash key
// ranges of a stream's shards, and which open shard owns a hash.
//
// Capture routes version 2 records with it: a record holds the changes of
// many partition keys that hash into one shard, and goes out with an
// ExplicitHashKey inside that shard's range. Fanout uses it to drop the
// changes of a record that landed on a shard whose range does not hold
// their keys (after a reshard the writer's map was stale): the writer
// re-sends exactly those changes to the right shard, so each change is
// published once per landing on a shard that owns it.
//
// A shard's hash key range never changes: splitting or merging closes
// shards and opens new ones with new ids. So "does shard X own hash h" has
// one answer for all time, and both stages may cache it per shard id.
package shardmap

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Hash is a 128-bit hash key.
type Hash struct{ Hi, Lo uint64 }

// KeyHash is the hash Kinesis gives a partition key.
func KeyHash(partitionKey []byte) Hash {
	sum := md5.Sum(partitionKey)
	return Hash{Hi: binary.BigEndian.Uint64(sum[:8]), Lo: binary.BigEndian.Uint64(sum[8:])}
}

// Less orders hashes as integers.
func (h Hash) Less(o Hash) bool { return h.Hi < o.Hi || h.Hi == o.Hi && h.Lo < o.Lo }

// String is the decimal form Kinesis uses (ExplicitHashKey, HashKeyRange).
func (h Hash) String() string {
	var n big.Int
	n.SetUint64(h.Hi).Lsh(&n, 64).Or(&n, new(big.Int).SetUint64(h.Lo))
	return n.String()
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// ParseHash reads a decimal hash key (0 to 2^128-1).
func ParseHash(s string) (Hash, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.Cmp(maxHash) > 0 {
		return Hash{}, fmt.Errorf("hash key %q is not an integer from 0 to 2^128-1", s)
	}
	lo := new(big.Int).And(n, new(big.Int).SetUint64(^uint64(0)))
	return Hash{Hi: new(big.Int).Rsh(n, 64).Uint64(), Lo: lo.Uint64()}, nil
}

// Range is a shard's hash key range, both ends included.
type Range struct{ Start, End Hash }

// Contains reports whether h is in r.
func (r Range) Contains(h Hash) bool { return !h.Less(r.Start) && !r.End.Less(h) }

// Shard is one shard as ListShards describes it.
type Shard struct {
	ID    string
	Range Range
	// Open: the shard takes writes (no ending sequence number yet).
	Open bool
}

// Map is a stream's shards at one moment.
type Map struct {
	all  map[string]Shard
	open []Shard // sorted by Range.Start
}

// New makes a map of these shards.
func New(shards []Shard) (*Map, error) {
	m := &Map{all: map[string]Shard{}}
	for _, s := range shards {
		m.all[s.ID] = s
		if s.Open {
			m.open = append(m.open, s)
		}
	}
	if len(m.open) == 0 {
		return nil, errors.New("shard map: the stream has no open shard")
	}
	sort.Slice(m.open, func(i, j int) bool { return m.open[i].Range.Start.Less(m.open[j].Range.Start) })
	return m, nil
}

// Owner is the open shard whose range holds h. The open shards of a stream
// cover the whole hash space; if a map somehow does not, the nearest shard
// below h is returned (Kinesis then routes by its own, current map, and a
// mismatch is handled like any stale prediction).
func (m *Map) Owner(h Hash) Shard {
	i := sort.Search(len(m.open), func(i int) bool { return h.Less(m.open[i].Range.Start) }) - 1
	return m.open[max(i, 0)]
}

// Shard looks a shard up by id, open or closed.
func (m *Map) Shard(id string) (Shard, bool) {
	s, ok := m.all[id]
	return s, ok
}

// All is every shard the map knows, open and closed, in no order.
func (m *Map) All() []Shard {
	out := make([]Shard, 0, len(m.all))
	for _, s := range m.all {
		out = append(out, s)
	}
	return out
}

// Open is the open shards, by hash range.
func (m *Map) Open() []Shard { return m.open }

// Lister is the part of the Kinesis client List uses.
type Lister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// List reads every shard of the stream (name or ARN) with ListShards,
// following NextToken. A stream given by ARN is named by its name part:
// that works on AWS for a stream of the caller's account and on emulators
// that predate ListShards' StreamARN parameter.
func List(ctx context.Context, api Lister, stream string) (*Map, error) {
	in := &kinesis.ListShardsInput{StreamName: aws.String(StreamName(stream))}
	var shards []Shard
	for {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of stream %s: %w", stream, err)
		}
		for i := range out.Shards {
			s, err := fromAPI(&out.Shards[i])
			if err != nil {
				return nil, fmt.Errorf("list shards of stream %s: %w", stream, err)
			}
			shards = append(shards, s)
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		// With a token, the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	return New(shards)
}

func fromAPI(s *types.Shard) (Shard, error) {
	id := aws.ToString(s.ShardId)
	if s.HashKeyRange == nil {
		return Shard{}, fmt.Errorf("shard %s has no hash key range", id)
	}
	start, err := ParseHash(aws.ToString(s.HashKeyRange.StartingHashKey))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %s: %w", id, err)
	}
	end, err := ParseHash(aws.ToString(s.HashKeyRange.EndingHashKey))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %s: %w", id, err)
	}
	open := s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
	return Shard{ID: id, Range: Range{Start: start, End: end}, Open: open}, nil
}

// StreamName is the name of a stream given by name or by ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).
func StreamName(stream string) string {
	if !strings.HasPrefix(stream, "arn:") {
		return stream
	}
	if i := strings.LastIndex(stream, ":stream/"); i >= 0 {
		return stream[i+len(":stream/"):]
	}
	return stream
}
