package change

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxPartitionKey is Kinesis's limit on a partition key, in Unicode code points.
const MaxPartitionKey = 256

// PartitionKey is the Kinesis partition key for a change: schema.table plus
// the key values, so that every change to one row lands on one shard in
// order. Tables without a key use schema.table (order per table), truncates
// use schema.table, and logical messages use "message:" + prefix. A key longer
// than Kinesis allows is replaced by a stable SHA-256 so it stays per-row.
func PartitionKey(c *Change) string { return string(AppendPartitionKey(nil, c)) }

// AppendPartitionKey appends c's partition key (see PartitionKey) to dst.
// The Kinesis writer builds keys into a scratch buffer with it, so that a key
// it already holds costs no allocation.
func AppendPartitionKey(dst []byte, c *Change) []byte {
	switch c.Op {
	case Message:
		start := len(dst)
		dst = append(dst, "message:"...)
		dst = append(dst, c.Prefix...)
		return fitKey(dst, start)
	case Truncate:
		return AppendRowKey(dst, c, nil)
	case SchemaChange:
		// A key of its own: a table's shape changes stay in order among
		// themselves, and never wait behind (or hold up) its rows.
		start := len(dst)
		dst = append(dst, "schema:"...)
		dst = AppendRowKey(dst, c, nil)
		return fitKey(dst, start)
	}
	tuple := c.New
	if c.Op == Delete || (c.Op == Update && c.Old != nil) {
		// An update that changes the key is ordered with the old row:
		// its earlier changes live under the old key.
		tuple = c.Old
	}
	return AppendRowKey(dst, c, tuple)
}

// AppendRowKey appends the partition key of the row whose values are tuple
// (c's New or Old) in c's table: the key a change to that row travels
// under. A nil tuple gives the table's key (schema.table), as truncates and
// keyless tables use. A backfill uses it to find the rows a live change
// touched, under both its old and its new key.
func AppendRowKey(dst []byte, c *Change, tuple []Value) []byte {
	start := len(dst)
	dst = append(dst, c.Schema...)
	dst = append(dst, '.')
	dst = append(dst, c.Table...)
	if tuple != nil {
		for i := range c.Columns {
			if !c.Columns[i].Key {
				continue
			}
			if i >= len(tuple) {
				break
			}
			dst = append(dst, '/')
			v := tuple[i]
			if v.State != Text {
				dst = append(dst, `\N`...)
				continue
			}
			// Escape the separator so ("a/b","c") and ("a","b/c") differ.
			for j := 0; j < len(v.Text); j++ {
				if b := v.Text[j]; b == '/' || b == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, v.Text[j])
			}
		}
	}
	return fitKey(dst, start)
}

// fitKey makes dst[start:] a valid Kinesis partition key: a stand-in for an
// empty one, a stable SHA-256 for one too long.
func fitKey(dst []byte, start int) []byte {
	k := dst[start:]
	switch {
	case len(k) == 0:
		return append(dst, '-')
	case len(k) > MaxPartitionKey || !fitsRunes(string(k)):
		sum := sha256.Sum256(k)
		dst = append(dst[:start], "sha256:"...)
		return hex.AppendEncode(dst, sum[:])
	}
	return dst
}

func fitsRunes(s string) bool {
	n := 0
	for range s {
		n++
		if n > MaxPartitionKey {
			return false
		}
	}
	return true
}
