package claimcheck

// The store against the S3 stand-in (s3rver) through the real SDK client.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/s3test"
)

func row(values ...string) *change.Change {
	c := &change.Change{Columns: []change.Column{{Name: "id", Key: true}}}
	c.New = []change.Value{{Text: strings.Repeat("k", 400)}}
	for i, v := range values {
		c.Columns = append(c.Columns, change.Column{Name: string(rune('a' + i))})
		c.New = append(c.New, change.Value{Text: v})
	}
	return c
}

func TestOffload(t *testing.T) {
	srv := s3test.Start(t, "values")
	client := s3test.Client(t, srv.URL)
	st := New(client, "values")
	ctx := context.Background()
	big, mid, small := strings.Repeat("é", 300<<10), strings.Repeat("m", 100<<10), "short"
	for _, tc := range []struct {
		name  string
		c     *change.Change
		limit int // fits: the text values together, at most
		want  []change.ValueState
	}{
		{"over the threshold", row(big, small), 1 << 30, []change.ValueState{change.Text, change.Stored, change.Text}},
		{"fitted, largest first", row(mid, small, strings.Repeat("n", 120<<10), mid), 150 << 10, []change.ValueState{change.Text, change.Stored, change.Text, change.Stored, change.Text}},
		{"the key stays", row(small), 10, []change.ValueState{change.Text, change.Text}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]change.Value(nil), tc.c.New...)
			caller := tc.c.New
			fits := func(c *change.Change) bool {
				n := 0
				for _, v := range c.New {
					n += len(v.Text)
				}
				return n <= tc.limit
			}
			if _, err := st.Offload(ctx, tc.c, DefaultThreshold, fits); err != nil {
				t.Fatal(err)
			}
			for i, v := range tc.c.New {
				if v.State != tc.want[i] {
					t.Fatalf("value %d is %v, want %v", i, v.State, tc.want[i])
				}
				if v.State != change.Stored {
					continue
				}
				got, err := Fetch(ctx, client, *v.Ref, v.Size)
				if err != nil || got != before[i].Text {
					t.Errorf("value %d: fetched %d bytes (%v), want the %d put", i, len(got), err, len(before[i].Text))
				}
			}
			for i := range caller {
				if caller[i] != before[i] {
					t.Errorf("the caller's tuple changed at %d", i)
				}
			}
		})
	}

	t.Run("one object per content", func(t *testing.T) {
		a, err := st.Put(ctx, big)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := st.Put(ctx, big)
		if *a != *b || a.Key != KeyPrefix+a.SHA256 {
			t.Errorf("two puts of one value: %+v and %+v", a, b)
		}
	})

	t.Run("a changed object is refused", func(t *testing.T) {
		ref, err := st.Put(ctx, "original")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("values"), Key: aws.String(ref.Key), Body: strings.NewReader("tampered")}); err != nil {
			t.Fatal(err)
		}
		if _, err := Fetch(ctx, client, *ref, len("original")); !errors.Is(err, ErrMismatch) {
			t.Errorf("fetch of a changed object: %v, want ErrMismatch", err)
		}
	})
}

// TestPutWaitsForS3: while S3 is down, Put retries with backoff; it
// succeeds once S3 is back, and gives up only when its context ends.
func TestPutWaitsForS3(t *testing.T) {
	srv := s3test.Start(t, "values")
	st := New(s3test.Client(t, srv.URL), "values")
	var retries atomic.Int32
	st.OnRetry = func(int, error) { retries.Add(1) }
	srv.Stop()
	done := make(chan error, 1)
	go func() {
		_, err := st.Put(context.Background(), "value")
		done <- err
	}()
	for retries.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("Put returned while S3 was down: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	srv.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("Put after S3 came back: %v", err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := st.Put(ctx, "other"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with S3 down and a deadline: %v", err)
	}
}
