package change

import "strconv"

// The framing of a record: the changes, encoded by AppendChange and
// separated by commas, between recordPrefix and recordSuffix. Decode relies
// on the prefix to take its one-pass path.
var (
	recordPrefix = `{"v":` + strconv.Itoa(Version) + `,"changes":[`
	recordSuffix = `]}`
)

// RecordOverhead is what a record's framing adds to its comma-separated
// changes, in bytes.
var RecordOverhead = len(recordPrefix) + len(recordSuffix)

// RecordBuilder appends one record to a buffer: Start, then Add (or
// AddEncoded) for each change in commit order, then Finish. It is the one
// place that knows how changes are framed, so that a producer holding
// changes already encoded (capture keeps them encoded while they wait for
// Kinesis) frames them exactly as Encode does.
type RecordBuilder struct {
	buf []byte
	n   int // changes (or runs of encoded changes) added
}

// Start begins a record at the end of dst.
func (b *RecordBuilder) Start(dst []byte) {
	b.buf = append(dst, recordPrefix...)
	b.n = 0
}

// Add encodes c as the record's next change.
func (b *RecordBuilder) Add(c *Change) {
	b.separate()
	b.buf = AppendChange(b.buf, c)
}

// AddEncoded adds changes already encoded by AppendChange: one, or several
// joined by commas.
func (b *RecordBuilder) AddEncoded(encoded []byte) {
	b.separate()
	b.buf = append(b.buf, encoded...)
}

// Finish closes the record and returns the buffer given to Start with the
// record appended.
func (b *RecordBuilder) Finish() []byte {
	out := append(b.buf, recordSuffix...)
	b.buf = nil
	return out
}

func (b *RecordBuilder) separate() {
	if b.n > 0 {
		b.buf = append(b.buf, ',')
	}
	b.n++
}
