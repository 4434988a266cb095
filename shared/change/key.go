package change

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxPartitionKey is Kinesis's limit on a partition key, in Unicode code points.
const MaxPartitionKey = 256

// PartitionKey is the Kinesis partition key for a change: schema.table plus
// the key values, so that every change to one row lands on one shard in
// order. Tables without a key use schema.table (order per table), truncates
// use schema.table, and logical messages use "message:" + prefix. A key longer
// than Kinesis allows is replaced by a stable SHA-256 so it stays per-row.
func PartitionKey(c *Change) string {
	var b strings.Builder
	switch c.Op {
	case Message:
		b.WriteString("message:")
		b.WriteString(c.Prefix)
	default:
		b.WriteString(c.Schema)
		b.WriteByte('.')
		b.WriteString(c.Table)
		if c.Op != Truncate {
			tuple := c.New
			if c.Op == Delete || (c.Op == Update && c.Old != nil) {
				// An update that changes the key is ordered with the old row:
				// its earlier changes live under the old key.
				tuple = c.Old
			}
			for _, i := range c.KeyColumns() {
				if i >= len(tuple) {
					break
				}
				b.WriteByte('/')
				v := tuple[i]
				if v.State == Text {
					// Escape the separator so ("a/b","c") and ("a","b/c") differ.
					b.WriteString(strings.ReplaceAll(strings.ReplaceAll(v.Text, `\`, `\\`), "/", `\/`))
				} else {
					b.WriteString(`\N`)
				}
			}
		}
	}
	k := b.String()
	if len(k) == 0 {
		return "-"
	}
	if len(k) > MaxPartitionKey || !fitsRunes(k) {
		sum := sha256.Sum256([]byte(k))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return k
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
