package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestBlockMAC compares blockMAC with crypto/hmac for keys shorter than,
// as long as and longer than a block (a long key is hashed first) and for
// every message length up to five blocks, so that the padding crosses a
// block boundary at every offset.
func TestBlockMAC(t *testing.T) {
	for _, kl := range []int{1, 9, 63, 64, 65, 200} {
		key := bytes.Repeat([]byte{byte(kl)}, kl)
		m := newBlockMAC(key)
		if m == nil {
			t.Fatalf("key of %d bytes: newBlockMAC failed its self-check", kl)
		}
		for n := range 5*sha256.BlockSize + 1 {
			msg := strings.Repeat(string(rune('a'+n%26)), n)
			ref := hmac.New(sha256.New, key)
			ref.Write([]byte(msg))
			got, ok := m.sum([]byte("prefix"), msg)
			if want := append([]byte("prefix"), ref.Sum(nil)...); !ok || !bytes.Equal(got, want) {
				t.Fatalf("key %d bytes, message %d bytes: %x (ok %v), want %x", kl, n, got, ok, want)
			}
		}
	}
}

// TestHasherWithoutBlockMAC is the Hasher where blockMAC fails its
// self-check: crypto/hmac gives the same digests.
func TestHasherWithoutBlockMAC(t *testing.T) {
	fast, _ := NewHasher([]byte("k"))
	slow, _ := NewHasher([]byte("k"))
	slow.fast = nil
	for _, s := range []string{"", "a", "b", strings.Repeat("long ", 40)} {
		if a, b := fast.Sum(s), slow.Sum(s); a != b || len(a) != 2*sha256.Size {
			t.Errorf("Sum(%q): %s with blockMAC, %s without", s, a, b)
		}
		m := hmac.New(sha256.New, []byte("k"))
		m.Write([]byte(s))
		if want := hex.EncodeToString(m.Sum(nil)); slow.Sum(s) != want {
			t.Errorf("Sum(%q) without blockMAC = %s, want %s", s, slow.Sum(s), want)
		}
	}
}

// BenchmarkHMAC is one value's HMAC both ways: blockMAC and crypto/hmac.
func BenchmarkHMAC(b *testing.B) {
	key, msg := []byte("bench-key"), "someone@example.com"
	b.Run("blockMAC", func(b *testing.B) {
		m := newBlockMAC(key)
		var out []byte
		for b.Loop() {
			out, _ = m.sum(out[:0], msg)
		}
	})
	b.Run("crypto-hmac", func(b *testing.B) {
		m := hmac.New(sha256.New, key)
		var in, out []byte
		for b.Loop() {
			m.Reset()
			in = append(in[:0], msg...)
			m.Write(in)
			out = m.Sum(out[:0])
		}
	})
}
