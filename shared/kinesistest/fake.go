package kinesistest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/walbridge/walbridge/shared/jsontext"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// FakeOptions shapes a Fake. The zero value is a healthy,
// provisioned, ACTIVE stream named "fake" that accepts everything.
type FakeOptions struct {
	// Stream is the one stream the endpoint knows (default "fake"); its ARN
	// is arn:aws:kinesis:us-east-1:000000000000:stream/<Stream>. Requests for
	// any other stream get ResourceNotFoundException.
	Stream string
	// Status is what DescribeStreamSummary reports (default ACTIVE). While it
	// is not ACTIVE or UPDATING, PutRecords gets ResourceNotFoundException
	// (CREATING, DELETING) as AWS does.
	Status types.StreamStatus
	// Mode is the capacity mode (default PROVISIONED).
	Mode types.StreamMode
	// Distribution is the RecordDistributionStrategy reported for an
	// ON_DEMAND stream (empty: the field is left out).
	Distribution types.RecordDistributionStrategy
	// MaxRecordSizeInKiB is reported by DescribeStreamSummary and enforced on
	// PutRecords; 0 leaves the field out and enforces the 1024 KiB default.
	MaxRecordSizeInKiB int32
	// Shards is the stream's shard count at the start (default 1), with
	// hash key ranges split evenly as CreateStream does. Records go to the
	// open shard whose range holds their hash key (MD5 of the partition key,
	// or ExplicitHashKey), like Kinesis; Split and Merge reshard. The fake
	// keeps order per shard, which is all Kinesis promises too.
	Shards int
	// ShardLimits enforces Kinesis's write limits per shard: 1,000 records
	// and 1 MiB (data plus partition keys) per second, with a one-second
	// burst. An entry over them fails with
	// ProvisionedThroughputExceededException, as on AWS.
	ShardLimits bool

	// ThrottleFraction of PutRecords entries fail with
	// ProvisionedThroughputExceededException, InternalFailureFraction with
	// InternalFailure (per-entry, inside a 200 response).
	ThrottleFraction        float64
	InternalFailureFraction float64
	// ServerErrorFraction of PutRecords requests fail whole with HTTP 500
	// InternalFailure; ThrottleRequestFraction with HTTP 400
	// ThrottlingException. Nothing of a failed request is kept.
	ServerErrorFraction     float64
	ThrottleRequestFraction float64
	// Seed makes the failures reproducible (default 1).
	Seed uint64

	// Discard acknowledges accepted records without keeping them: Records
	// stays empty, Stats still counts. For benchmarks.
	Discard bool
	// Latency delays every PutRecords answer, as a round trip to AWS would.
	Latency time.Duration
}

// FakeRecord is one record the fake accepted.
type FakeRecord struct {
	PartitionKey    string
	ExplicitHashKey string // as sent ("" when none)
	SequenceNumber  string
	ShardID         string
	Data            []byte
}

// FakeStats counts what the fake saw.
type FakeStats struct {
	PutRecordsRequests int // PutRecords calls received, failed ones included
	Entries            int // entries in those calls
	Accepted           int // entries accepted
	AcceptedBytes      int // data bytes of the accepted entries (decoded, partition keys not counted)
	Throttled          int // entries failed with ProvisionedThroughputExceededException
	InternalFailures   int // entries failed with InternalFailure
	RequestErrors      int // whole requests failed on purpose (500s and throttles)
	Rejected           int // requests refused by validation
}

// Fake is an in-process Kinesis endpoint that speaks the service's
// JSON 1.1 protocol (the one aws-sdk-go-v2's kinesis client uses) for
// PutRecords and DescribeStreamSummary. It validates requests the way AWS
// does (at most 500 records, 5 MiB per request counting partition keys, each
// record's data plus key within the stream's maximum record size, partition
// keys of 1 to 256 characters), can fail entries and whole requests on
// purpose, can hold a partition key's requests until released, and keeps a
// log of accepted records in acceptance order. It ignores signatures.
type Fake struct {
	// URL is the endpoint, for kinesis.Options.BaseEndpoint.
	URL string

	srv  *httptest.Server
	opts FakeOptions
	arn  string

	mu      sync.Mutex
	rng     *rand.Rand
	seq     uint64
	records []FakeRecord
	stats   FakeStats
	holds   map[string]chan struct{}

	shards []*fakeShard // every shard ever, open and closed, by creation
}

// fakeShard is one shard of the fake stream.
type fakeShard struct {
	id               string
	rng              shardmap.Range
	parent, adjacent string
	startSeq, endSeq uint64  // endSeq 0: open
	records, bytes   float64 // ShardLimits' token buckets
	refilled         time.Time
}

// Per-shard write limits (ShardLimits).
const (
	shardRecordsPerSecond = 1000
	shardBytesPerSecond   = 1 << 20
)

const fakeRequestLimit = 5 << 20

// StartFake starts a Fake for the test and stops it when the
// test ends.
func StartFake(tb testing.TB, opts FakeOptions) *Fake {
	tb.Helper()
	f := NewFake(opts)
	tb.Cleanup(f.Close)
	return f
}

// NewFake starts a Fake; the caller must Close it.
func NewFake(opts FakeOptions) *Fake {
	if opts.Stream == "" {
		opts.Stream = "fake"
	}
	if opts.Status == "" {
		opts.Status = types.StreamStatusActive
	}
	if opts.Mode == "" {
		opts.Mode = types.StreamModeProvisioned
	}
	if opts.Shards <= 0 {
		opts.Shards = 1
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	f := &Fake{
		opts:  opts,
		arn:   "arn:aws:kinesis:us-east-1:000000000000:stream/" + opts.Stream,
		rng:   rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		holds: map[string]chan struct{}{},
	}
	// CreateStream's even split: shard i starts at i * floor(2^128 / n).
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	width := new(big.Int).Div(space, big.NewInt(int64(opts.Shards)))
	for i := range opts.Shards {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == opts.Shards-1 {
			end.Sub(space, big.NewInt(1))
		}
		f.addShard(shardmap.Range{Start: bigHash(start), End: bigHash(end)}, "", "")
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server, releasing any held requests first.
func (f *Fake) Close() {
	f.mu.Lock()
	for k, ch := range f.holds {
		close(ch)
		delete(f.holds, k)
	}
	f.mu.Unlock()
	f.srv.Close()
}

func bigHash(n *big.Int) shardmap.Hash {
	h, err := shardmap.ParseHash(n.String())
	if err != nil {
		panic(err)
	}
	return h
}

// addShard opens a shard (f.mu held, or during NewFake).
func (f *Fake) addShard(r shardmap.Range, parent, adjacent string) *fakeShard {
	s := &fakeShard{id: fmt.Sprintf("shardId-%012d", len(f.shards)), rng: r, parent: parent, adjacent: adjacent,
		startSeq: f.seq + 1, records: shardRecordsPerSecond, bytes: shardBytesPerSecond, refilled: time.Now()}
	f.shards = append(f.shards, s)
	return s
}

// close ends a shard's writes (f.mu held).
func (f *Fake) closeShard(s *fakeShard) { s.endSeq = f.seq + 1 }

func (f *Fake) openShard(id string) (*fakeShard, error) {
	for _, s := range f.shards {
		if s.id == id {
			if s.endSeq != 0 {
				return nil, fmt.Errorf("shard %s is closed", id)
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("no shard %s", id)
}

// Split closes an open shard and opens two children: one from its start
// to at-1, one from at to its end, as SplitShard does. It returns the
// children's ids.
func (f *Fake) Split(shard string, at shardmap.Hash) (low, high string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.openShard(shard)
	if err != nil {
		return "", "", err
	}
	if !s.rng.Start.Less(at) || s.rng.End.Less(at) {
		return "", "", fmt.Errorf("split point %s is not inside shard %s's range", at, shard)
	}
	below := at
	if below.Lo == 0 {
		below.Hi--
	}
	below.Lo--
	f.closeShard(s)
	a := f.addShard(shardmap.Range{Start: s.rng.Start, End: below}, s.id, "")
	b := f.addShard(shardmap.Range{Start: at, End: s.rng.End}, s.id, "")
	return a.id, b.id, nil
}

// Merge closes two open shards with adjacent ranges and opens one child
// covering both, as MergeShards does. It returns the child's id.
func (f *Fake) Merge(shard, adjacent string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.openShard(shard)
	if err != nil {
		return "", err
	}
	b, err := f.openShard(adjacent)
	if err != nil {
		return "", err
	}
	if b.rng.Start.Less(a.rng.Start) {
		a, b = b, a
	}
	next := a.rng.End
	next.Lo++
	if next.Lo == 0 {
		next.Hi++
	}
	if next != b.rng.Start {
		return "", fmt.Errorf("shards %s and %s are not adjacent", shard, adjacent)
	}
	f.closeShard(a)
	f.closeShard(b)
	return f.addShard(shardmap.Range{Start: a.rng.Start, End: b.rng.End}, a.id, b.id).id, nil
}

// OpenShards is the ids of the open shards, by hash range.
func (f *Fake) OpenShards() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var open []*fakeShard
	for _, s := range f.shards {
		if s.endSeq == 0 {
			open = append(open, s)
		}
	}
	slices.SortFunc(open, func(a, b *fakeShard) int {
		if a.rng.Start.Less(b.rng.Start) {
			return -1
		}
		return 1
	})
	ids := make([]string, len(open))
	for i, s := range open {
		ids[i] = s.id
	}
	return ids
}

// route is the open shard owning hash (f.mu held).
func (f *Fake) route(h shardmap.Hash) *fakeShard {
	for _, s := range f.shards {
		if s.endSeq == 0 && s.rng.Contains(h) {
			return s
		}
	}
	panic("fake Kinesis: the open shards do not cover the hash space")
}

// admit takes one record of size bytes from the shard's limits, if
// ShardLimits is set (f.mu held).
func (f *Fake) admit(s *fakeShard, size int, now time.Time) bool {
	if !f.opts.ShardLimits {
		return true
	}
	dt := now.Sub(s.refilled).Seconds()
	s.refilled = now
	s.records = min(shardRecordsPerSecond, s.records+dt*shardRecordsPerSecond)
	s.bytes = min(shardBytesPerSecond, s.bytes+dt*shardBytesPerSecond)
	if s.records < 1 || s.bytes < float64(size) {
		return false
	}
	s.records--
	s.bytes -= float64(size)
	return true
}

// ARN is the stream's ARN.
func (f *Fake) ARN() string { return f.arn }

// Hold makes every PutRecords request that carries partitionKey wait (before
// anything in it is accepted) until release is called. Other requests go on.
func (f *Fake) Hold(partitionKey string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.holds[partitionKey] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.holds[partitionKey] == ch {
				delete(f.holds, partitionKey)
				close(ch)
			}
			f.mu.Unlock()
		})
	}
}

// Records returns the accepted records in acceptance order.
func (f *Fake) Records() []FakeRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeRecord(nil), f.records...)
}

// RecordsByKey returns the accepted records per partition key, each list in
// acceptance order.
func (f *Fake) RecordsByKey() map[string][]FakeRecord {
	out := map[string][]FakeRecord{}
	for _, r := range f.Records() {
		out[r.PartitionKey] = append(out[r.PartitionKey], r)
	}
	return out
}

// Stats returns the counters.
func (f *Fake) Stats() FakeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fakeError(w, http.StatusBadRequest, "SerializationException", "fake Kinesis speaks application/x-amz-json-1.1 only, got "+ct)
		return
	}
	body := make([]byte, 0, max(r.ContentLength, 0)+1)
	body, err := readAll(body, r.Body)
	if err != nil {
		fakeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	switch r.Header.Get("X-Amz-Target") {
	case "Kinesis_20131202.PutRecords":
		f.putRecords(w, r, body)
	case "Kinesis_20131202.DescribeStreamSummary":
		f.describeStreamSummary(w, body)
	case "Kinesis_20131202.ListShards":
		f.listShards(w, body)
	default:
		fakeError(w, http.StatusBadRequest, "UnknownOperationException", "fake Kinesis does not implement "+r.Header.Get("X-Amz-Target"))
	}
}

type fakeStreamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

// stream checks the request names our stream; it writes the error itself.
func (f *Fake) stream(w http.ResponseWriter, ref fakeStreamRef) bool {
	switch {
	case ref.StreamName == "" && ref.StreamARN == "":
		fakeError(w, http.StatusBadRequest, "ValidationException", "either StreamName or StreamARN is required")
		return false
	case ref.StreamName != "" && ref.StreamName != f.opts.Stream, ref.StreamARN != "" && ref.StreamARN != f.arn:
		name := ref.StreamName
		if name == "" {
			name = ref.StreamARN
		}
		fakeError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Stream %s under account 000000000000 not found.", name))
		return false
	}
	return true
}

func (f *Fake) maxRecordBytes() int {
	if f.opts.MaxRecordSizeInKiB > 0 {
		return int(f.opts.MaxRecordSizeInKiB) << 10
	}
	return 1 << 20
}

// streamRequest reads a request that names the stream and checks it is
// ours; false means the error answer is written.
func (f *Fake) streamRequest(w http.ResponseWriter, body []byte) bool {
	var in fakeStreamRef
	if err := json.Unmarshal(body, &in); err != nil {
		fakeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return false
	}
	return f.stream(w, in)
}

func (f *Fake) describeStreamSummary(w http.ResponseWriter, body []byte) {
	if !f.streamRequest(w, body) {
		return
	}
	s := map[string]any{
		"StreamName":              f.opts.Stream,
		"StreamARN":               f.arn,
		"StreamStatus":            f.opts.Status,
		"StreamModeDetails":       map[string]any{"StreamMode": f.opts.Mode},
		"RetentionPeriodHours":    24,
		"StreamCreationTimestamp": float64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()),
		"EnhancedMonitoring":      []any{map[string]any{"ShardLevelMetrics": []string{}}},
		"EncryptionType":          "NONE",
		"OpenShardCount":          len(f.OpenShards()),
		"ConsumerCount":           0,
	}
	if f.opts.MaxRecordSizeInKiB > 0 {
		s["MaxRecordSizeInKiB"] = f.opts.MaxRecordSizeInKiB
	}
	if f.opts.Mode == types.StreamModeOnDemand && f.opts.Distribution != "" {
		s["RecordDistributionStrategy"] = f.opts.Distribution
	}
	fakeJSON(w, map[string]any{"StreamDescriptionSummary": s})
}

// listShards answers ListShards with every shard, open and closed, in one
// page.
func (f *Fake) listShards(w http.ResponseWriter, body []byte) {
	if !f.streamRequest(w, body) {
		return
	}
	f.mu.Lock()
	var shards []any
	for _, s := range f.shards {
		seq := map[string]any{"StartingSequenceNumber": string(appendFakeSequence(nil, s.startSeq))}
		if s.endSeq != 0 {
			seq["EndingSequenceNumber"] = string(appendFakeSequence(nil, s.endSeq))
		}
		sh := map[string]any{"ShardId": s.id, "SequenceNumberRange": seq,
			"HashKeyRange": map[string]any{"StartingHashKey": s.rng.Start.String(), "EndingHashKey": s.rng.End.String()}}
		if s.parent != "" {
			sh["ParentShardId"] = s.parent
		}
		if s.adjacent != "" {
			sh["AdjacentParentShardId"] = s.adjacent
		}
		shards = append(shards, sh)
	}
	f.mu.Unlock()
	fakeJSON(w, map[string]any{"Shards": shards})
}

type fakePutRecordsInput struct {
	fakeStreamRef
	Records []fakeEntry
}

// fakeEntry is one PutRecords entry. Data stays base64 as sent; its decoded
// length is computed without decoding unless the record is kept.
type fakeEntry struct {
	data            string // base64
	decoded         []byte // set by validate unless the fake discards
	PartitionKey    string
	ExplicitHashKey string
	hash            shardmap.Hash // set by validate
}

func (e *fakeEntry) dataLen() int {
	n := len(e.data) / 4 * 3
	for i := len(e.data) - 1; i >= 0 && i >= len(e.data)-2 && e.data[i] == '='; i-- {
		n--
	}
	return n
}

func (f *Fake) putRecords(w http.ResponseWriter, r *http.Request, body []byte) {
	var in fakePutRecordsInput
	if err := parsePutRecords(body, &in); err != nil {
		fakeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	f.mu.Lock()
	f.stats.PutRecordsRequests++
	f.stats.Entries += len(in.Records)
	f.mu.Unlock()
	if !f.stream(w, in.fakeStreamRef) {
		f.reject()
		return
	}
	if f.opts.Status != types.StreamStatusActive && f.opts.Status != types.StreamStatusUpdating {
		f.reject()
		fakeError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Stream %s under account 000000000000 not found.", f.opts.Stream))
		return
	}
	if msg := f.validate(&in); msg != "" {
		f.reject()
		code := "ValidationException"
		if strings.HasPrefix(msg, "Records size") {
			code = "InvalidArgumentException"
		}
		fakeError(w, http.StatusBadRequest, code, msg)
		return
	}

	if f.opts.Latency > 0 {
		select {
		case <-time.After(f.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	// Hold before deciding anything, so a held request is accepted (or
	// failed) only after release, like a slow shard.
	for {
		var hold chan struct{}
		f.mu.Lock()
		for i := range in.Records {
			if ch, ok := f.holds[in.Records[i].PartitionKey]; ok {
				hold = ch
				break
			}
		}
		f.mu.Unlock()
		if hold == nil {
			break
		}
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch p := f.rng.Float64(); {
	case p < f.opts.ServerErrorFraction:
		f.stats.RequestErrors++
		fakeError(w, http.StatusInternalServerError, "InternalFailureException", "Internal service failure.")
		return
	case p < f.opts.ServerErrorFraction+f.opts.ThrottleRequestFraction:
		f.stats.RequestErrors++
		fakeError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	}
	// The answer is written by hand for the same reason the request is
	// parsed by hand: a benchmark's fake should cost little.
	out := make([]byte, 0, 64+96*len(in.Records))
	out = append(out, `{"Records":[`...)
	failed := 0
	now := time.Now()
	for i := range in.Records {
		rec := &in.Records[i]
		if i > 0 {
			out = append(out, ',')
		}
		sh := f.route(rec.hash)
		shard := sh.id
		switch p := f.rng.Float64(); {
		case !f.admit(sh, rec.dataLen()+len(rec.PartitionKey), now):
			f.stats.Throttled++
			failed++
			out = appendFakeFailure(out, "ProvisionedThroughputExceededException",
				fmt.Sprintf("Rate exceeded for shard %s in stream %s under account 000000000000.", shard, f.opts.Stream))
			continue
		case p < f.opts.ThrottleFraction:
			f.stats.Throttled++
			failed++
			out = appendFakeFailure(out, "ProvisionedThroughputExceededException",
				fmt.Sprintf("Rate exceeded for shard %s in stream %s under account 000000000000.", shard, f.opts.Stream))
			continue
		case p < f.opts.ThrottleFraction+f.opts.InternalFailureFraction:
			f.stats.InternalFailures++
			failed++
			out = appendFakeFailure(out, "InternalFailure", "Internal service failure.")
			continue
		}
		f.seq++
		f.stats.Accepted++
		f.stats.AcceptedBytes += rec.dataLen()
		out = append(out, `{"SequenceNumber":"`...)
		seqStart := len(out)
		out = appendFakeSequence(out, f.seq)
		if !f.opts.Discard {
			f.records = append(f.records, FakeRecord{PartitionKey: rec.PartitionKey, ExplicitHashKey: rec.ExplicitHashKey, SequenceNumber: string(out[seqStart:]), ShardID: shard, Data: rec.decoded})
		}
		out = append(out, `","ShardId":"`...)
		out = append(out, shard...)
		out = append(out, `"}`...)
	}
	out = append(out, `],"FailedRecordCount":`...)
	out = strconv.AppendInt(out, int64(failed), 10)
	out = append(out, `,"EncryptionType":"NONE"}`...)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

func appendFakeFailure(out []byte, code, msg string) []byte {
	out = append(out, `{"ErrorCode":"`...)
	out = append(out, code...)
	out = append(out, `","ErrorMessage":`...)
	out = strconv.AppendQuote(out, msg) // messages are plain ASCII: Go and JSON quoting agree
	return append(out, '}')
}

// appendFakeSequence writes a sequence number shaped like Kinesis's (56
// decimal digits) that grows with n.
func appendFakeSequence(out []byte, n uint64) []byte {
	out = append(out, "4959"...)
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], n, 10)
	for range 52 - len(d) {
		out = append(out, '0')
	}
	return append(out, d...)
}

func (f *Fake) reject() {
	f.mu.Lock()
	f.stats.Rejected++
	f.mu.Unlock()
}

// validate applies the PutRecords limits; it returns AWS-like messages.
func (f *Fake) validate(in *fakePutRecordsInput) string {
	n := len(in.Records)
	if n < 1 || n > 500 {
		return fmt.Sprintf("1 validation error detected: Value '%d records' at 'records' failed to satisfy constraint: Member must have length between 1 and 500", n)
	}
	maxRecord := f.maxRecordBytes()
	total := 0
	for i := range in.Records {
		rec := &in.Records[i]
		if k := utf8.RuneCountInString(rec.PartitionKey); k < 1 || k > 256 {
			return fmt.Sprintf("1 validation error detected: Value at 'records.%d.member.partitionKey' failed to satisfy constraint: Member must have length between 1 and 256", i+1)
		}
		if rec.ExplicitHashKey != "" {
			h, err := shardmap.ParseHash(rec.ExplicitHashKey)
			if err != nil {
				return fmt.Sprintf("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", rec.ExplicitHashKey)
			}
			rec.hash = h
		} else {
			rec.hash = shardmap.KeyHash(unsafe.Slice(unsafe.StringData(rec.PartitionKey), len(rec.PartitionKey)))
		}
		if !f.opts.Discard {
			// Decoding is what costs; a benchmark's Discard skips it.
			var err error
			if rec.decoded, err = base64.StdEncoding.DecodeString(rec.data); err != nil {
				return fmt.Sprintf("records.%d.member.data: %v", i+1, err)
			}
		}
		size := rec.dataLen() + len(rec.PartitionKey)
		if size > maxRecord {
			return fmt.Sprintf("1 validation error detected: Value at 'records.%d.member.data' failed to satisfy constraint: record of %d bytes (data plus partition key) exceeds the stream's maximum record size of %d bytes", i+1, size, maxRecord)
		}
		total += size
	}
	// A record larger than 5 MiB (possible once MaxRecordSizeInKiB is
	// raised) can only travel alone.
	if total > max(fakeRequestLimit, maxRecord) || (total > fakeRequestLimit && n > 1) {
		return fmt.Sprintf("Records size exceeds 5 MB limit: %d bytes in %d records", total, n)
	}
	return ""
}

func fakeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fakeError(w, http.StatusInternalServerError, "InternalFailureException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func fakeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	w.Write(b)
}

// parsePutRecords reads a PutRecords request body. It is a hand parser on
// jsontext.Scanner rather than encoding/json so that, in benchmarks, the fake
// costs little next to the code under test: record data is located, not
// decoded. It accepts any JSON object, skipping members it does not know.
func parsePutRecords(body []byte, in *fakePutRecordsInput) error {
	// The scanner reads body in place: strings that outlive the request
	// (names, partition keys) are cloned, and Data is decoded into a copy
	// when kept. Lax: the SDK wrote the body, and decoding checks Data.
	sc := jsontext.Scanner{Lax: true}
	sc.Reset(unsafe.String(unsafe.SliceData(body), len(body)))
	sc.Object(func(key string) {
		switch key {
		case "StreamName":
			in.StreamName = strings.Clone(sc.Text())
		case "StreamARN":
			in.StreamARN = strings.Clone(sc.Text())
		case "Records":
			sc.Array(func() {
				var e fakeEntry
				sc.Object(func(key string) {
					switch key {
					case "Data":
						e.data = sc.Text()
					case "PartitionKey":
						e.PartitionKey = strings.Clone(sc.Text())
					case "ExplicitHashKey":
						e.ExplicitHashKey = strings.Clone(sc.Text())
					default:
						sc.Skip()
					}
				})
				in.Records = append(in.Records, e)
			})
		default:
			sc.Skip()
		}
	})
	if !sc.End() && sc.Err() == nil {
		sc.Fail("data after the request object")
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// readAll is io.ReadAll into a buffer sized from Content-Length.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
