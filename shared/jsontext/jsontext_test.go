package jsontext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "ctl \x00\x01\x1f\n\r\t", "é 漢字 😀", "<html>&", "\u2028"} {
		enc := AppendString([]byte("x"), s)
		var got string
		if err := json.Unmarshal(enc[1:], &got); err != nil || got != s {
			t.Errorf("AppendString(%q) = %s, which reads back as %q (%v)", s, enc[1:], got, err)
		}
	}
	if got := string(AppendString(nil, "a\xffb")); got != `"a\ufffdb"` {
		t.Errorf("invalid UTF-8: %s, want U+FFFD", got)
	}
}

func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		opts Scanner
	}{
		{`{"a":[1,-2.5e3,"x",true,false,null,{}]}`, true, Scanner{}},
		{` [ ] `, true, Scanner{}},
		{`"\u00e9\n"`, true, Scanner{}},
		{`{"a":1,}`, false, Scanner{}},
		{`[01]`, false, Scanner{}},
		{`"\x"`, false, Scanner{}},
		{"\"a\x01\"", false, Scanner{}},
		{"\"a\x01\"", true, Scanner{Lax: true}},
		{"\"\xff\"", false, Scanner{}},
		{`[1] 2`, false, Scanner{}},
		{`[[[1]]]`, true, Scanner{MaxDepth: 3}},
		{`[[[[1]]]]`, false, Scanner{MaxDepth: 3}},
		{`[9223372036854775808]`, false, Scanner{CheckNumber: func(tok string, integer bool) bool { return !integer || len(tok) < 19 }}},
		{`[1.5]`, true, Scanner{CheckNumber: func(tok string, integer bool) bool { return !integer || len(tok) < 19 }}},
	} {
		sc := tc.opts
		sc.Reset(tc.in)
		sc.Skip()
		if got := sc.End(); got != tc.ok {
			t.Errorf("%q: valid %v, want %v (err %v)", tc.in, got, tc.ok, sc.Err())
		}
	}
}

func TestObjectAndText(t *testing.T) {
	var sc Scanner
	sc.Reset(`{"k\u0041":"v\"1", "n": 12, "skip": {"x": [1]}}`)
	got := map[string]string{}
	sc.Object(func(key string) {
		switch key {
		case "kA":
			got[key] = sc.Text()
		case "n":
			tok, integer := sc.Number()
			if !integer {
				t.Error("12 is not an integer?")
			}
			got[key] = tok
		default:
			sc.Skip()
		}
	})
	if !sc.End() || got["kA"] != `v"1` || got["n"] != "12" {
		t.Fatalf("got %v, err %v", got, sc.Err())
	}
	sc.Reset(`{"a" 1}`)
	sc.Object(func(string) { sc.Skip() })
	if err := sc.Err(); err == nil || !strings.Contains(err.Error(), "byte 5") {
		t.Errorf("error %v, want one at byte 5", err)
	}
}

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "-0.5": true, "1e+9": true, "1E-2": true, "01": false, "1.": false, ".5": false, "+1": false, "1e": false, "NaN": false, "": false, "1 ": false} {
		if got := IsNumber(s); got != want {
			t.Errorf("IsNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzSkip holds the scanner to encoding/json: for valid UTF-8 it accepts
// exactly what json.Valid accepts (the same 10000-level nesting limit).
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"\ud83d\ude00"`, `-0.0e-0`, `[`, `{"a":}`, `tru`, `[1,]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		var sc Scanner
		sc.Reset(s)
		sc.Skip()
		if got, want := sc.End(), json.Valid([]byte(s)); got != want {
			t.Fatalf("%q: scanner says %v, encoding/json %v (err %v)", s, got, want, sc.Err())
		}
	})
}

// TestAppendStringWordAtATime puts every byte that needs care at every
// offset of strings around the eight-byte stride and compares with a byte at
// a time encoding.
func TestAppendStringWordAtATime(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\x20", "\"", "\\", "!", "#", "[", "]", "\x7f", "\x80", "\xff", "é", "漢", "😀", "\u2028"}
	for n := 0; n <= 24; n++ {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				if got, want := string(AppendString(nil, s)), string(byteAtATime(nil, s)); got != want {
					t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
				}
			}
		}
	}
}

// byteAtATime is AppendString without the word-at-a-time pass.
func byteAtATime(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\':
				dst = append(dst, c)
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func BenchmarkAppendString(b *testing.B) {
	s := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var dst []byte
	for b.Loop() {
		dst = AppendString(dst[:0], s)
	}
}
