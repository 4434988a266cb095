// Package claimcheck keeps column values too large to travel in a Kinesis
// record, or in an event, in S3, and puts a reference in their place (the
// claim check): {"s3":{"bucket","key"},"bytes","sha256"} in change records
// and, beside the column's type, in events. Nothing is omitted: a consumer
// fetches the object (Fetch) and gets the value's text exactly as
// PostgreSQL's output function wrote it.
//
// Objects are content-addressed (the key is the text's SHA-256), so putting
// a value again after a crash or a replay writes the same object, and a
// record never references an object that is not there: the object is put
// before the record that references it is handed to Kinesis. Encryption is
// the bucket's default (the stack configures SSE-KMS on it).
package claimcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
)

// DefaultThreshold is the value size above which a value goes to S3 even
// when its record would fit: a Kinesis record of a few such values, base64
// in Lambda's invocation (a third larger), stays far within the 6 MB a
// function can receive with the rest of its batch.
const DefaultThreshold = 256 << 10

// KeyPrefix starts every object key; the rest is the value's SHA-256.
const KeyPrefix = change.RefKeyPrefix

// Putter is the part of the S3 client Store uses.
type Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Getter is the part of the S3 client Fetch uses.
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Store puts values in one bucket. It is safe for concurrent use.
type Store struct {
	client Putter
	bucket string
	retry  backoff.Policy
	// OnRetry, when set, is told of each failed put before its retry (for
	// logs and metrics; err carries no value).
	OnRetry func(attempt int, err error)
}

// New returns a store of bucket, retrying failed puts with full-jitter
// backoff from 100 ms up to 10 s.
func New(client Putter, bucket string) *Store {
	return &Store{client: client, bucket: bucket, retry: backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}}
}

// Client is the S3 client for cfg. An endpoint set in the environment
// (AWS_ENDPOINT_URL_S3, or AWS_ENDPOINT_URL for every service) is a local
// S3 stand-in: it is addressed path-style, and the checksums it does not
// send are not logged as missing.
func Client(cfg aws.Config) *s3.Client {
	local := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = local
		o.DisableLogOutputChecksumValidationSkipped = local
	})
}

// Bucket is the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Put stores text and returns its reference. A failure is retried with
// backoff until it succeeds or ctx ends: while S3 is unavailable the caller
// waits, and nothing after the value is confirmed.
func (s *Store) Put(ctx context.Context, text string) (*change.Ref, error) {
	sum := sha256.Sum256([]byte(text))
	ref := &change.Ref{Bucket: s.bucket, SHA256: hex.EncodeToString(sum[:])}
	ref.Key = KeyPrefix + ref.SHA256
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(ref.Key), Body: strings.NewReader(text),
			ContentLength: aws.Int64(int64(len(text))), ContentType: aws.String("text/plain; charset=utf-8"),
		})
		if err == nil {
			return ref, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("claim check: put s3://%s/%s: %w", s.bucket, ref.Key, ctx.Err())
		}
		if s.OnRetry != nil {
			s.OnRetry(attempt+1, err)
		}
		if !backoff.Sleep(ctx, s.retry.Delay(attempt)) {
			return nil, fmt.Errorf("claim check: put s3://%s/%s: %w", s.bucket, ref.Key, ctx.Err())
		}
	}
}

// Offload moves values of c to S3: every text value larger than threshold,
// then, while fits(c) is false, the largest remaining text value outside
// the key columns (the partition key is made of key values). It returns how
// many values it moved. The tuples are replaced, not written to, when a
// value moves, so the caller's slices are left as they were. A value that
// appears in both tuples is put once.
func (s *Store) Offload(ctx context.Context, c *change.Change, threshold int, fits func(*change.Change) bool) (int, error) {
	moved := 0
	cloned := false
	refs := map[string]*change.Ref{} // by text, within this change
	move := func(tuple *[]change.Value, i int) error {
		if !cloned {
			c.New, c.Old, cloned = slices.Clone(c.New), slices.Clone(c.Old), true
		}
		t := *tuple
		v := t[i]
		ref := refs[v.Text]
		if ref == nil {
			var err error
			if ref, err = s.Put(ctx, v.Text); err != nil {
				return err
			}
			refs[v.Text] = ref
		}
		t[i] = change.Value{State: change.Stored, Size: len(v.Text), Ref: ref}
		moved++
		return nil
	}
	for _, which := range []int{0, 1} {
		for i := range tuple(c, which) {
			if v := tuple(c, which)[i]; v.State == change.Text && len(v.Text) > threshold {
				if err := move(tuplePtr(c, which), i); err != nil {
					return moved, err
				}
			}
		}
	}
	for !fits(c) {
		which, i := largest(c)
		if which < 0 {
			return moved, nil // nothing left to move: the caller's size policy decides
		}
		if err := move(tuplePtr(c, which), i); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

func tuple(c *change.Change, which int) []change.Value {
	if which == 0 {
		return c.New
	}
	return c.Old
}

func tuplePtr(c *change.Change, which int) *[]change.Value {
	if which == 0 {
		return &c.New
	}
	return &c.Old
}

// refMarkerSize is about what a reference costs encoded; a shorter value is
// not worth moving.
const refMarkerSize = 180

// largest finds the largest text value outside the key columns (which < 0
// when none is worth moving).
func largest(c *change.Change) (which, i int) {
	which, best := -1, refMarkerSize
	for w := range 2 {
		for j, v := range tuple(c, w) {
			if v.State != change.Text || len(v.Text) <= best || (j < len(c.Columns) && c.Columns[j].Key) {
				continue
			}
			which, i, best = w, j, len(v.Text)
		}
	}
	return which, i
}

// ErrMismatch is returned (wrapped) by Fetch when an object is not the
// value its reference names.
var ErrMismatch = errors.New("claim check: object does not match its reference")

// Fetch reads a referenced value and checks its size and SHA-256.
func Fetch(ctx context.Context, client Getter, ref change.Ref, size int) (string, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ref.Bucket), Key: aws.String(ref.Key)})
	if err != nil {
		return "", fmt.Errorf("claim check: get s3://%s/%s: %w", ref.Bucket, ref.Key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, int64(size)+1))
	if err != nil {
		return "", fmt.Errorf("claim check: read s3://%s/%s: %w", ref.Bucket, ref.Key, err)
	}
	sum := sha256.Sum256(body)
	if len(body) != size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return "", fmt.Errorf("s3://%s/%s: %d bytes, want %d with SHA-256 %s: %w", ref.Bucket, ref.Key, len(body), size, ref.SHA256, ErrMismatch)
	}
	return string(body), nil
}
