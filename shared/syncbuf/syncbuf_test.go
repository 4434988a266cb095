package syncbuf

import (
	"fmt"
	"sync"
	"testing"
)

func TestConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "%d:%d\n", w, i)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-b.Wrote():
			_ = b.String()
		case <-done:
			waiting = false
		}
	}
	if got, want := len(b.String()), 4*(10*4+90*5); got != want {
		t.Errorf("%d bytes written, want %d", got, want)
	}
}
