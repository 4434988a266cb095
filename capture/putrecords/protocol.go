package putrecords

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walbridge/walbridge/shared/change"
)

// putRecordsProtocol is the client's own wire protocol (awsJson 1.1) with
// PutRecords bodies written and successful answers read by hand. Everything
// else stays the SDK's: endpoint resolution, signing, retries, the HTTP
// transport, error responses, every other operation, and any answer whose
// shape the fast reader does not expect (it hands those to the SDK).
//
// Why: at 100k changes/s the SDK's generic serializer (growing buffers, a
// copy per record) and its generic decoder were a quarter of capture's CPU.
// The body is the same JSON document the SDK writes (TestPutRecordsBodyMatchesSDK
// and FuzzPutRecordsResponse hold the two to each other).
type putRecordsProtocol struct {
	smithyhttp.ClientProtocol
}

// withPutRecordsProtocol is a per-call client option installing
// putRecordsProtocol around the client's protocol.
func withPutRecordsProtocol(o *kinesis.Options) {
	if o.Protocol == nil {
		return
	}
	if _, done := o.Protocol.(*putRecordsProtocol); !done {
		o.Protocol = &putRecordsProtocol{ClientProtocol: o.Protocol}
	}
}

// SerializeRequest implements smithyhttp.ClientProtocol.
func (p *putRecordsProtocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, v smithy.Serializable, req *smithyhttp.Request) error {
	in, ok := v.(*kinesis.PutRecordsInput)
	if !ok {
		return p.ClientProtocol.SerializeRequest(ctx, schema, v, req)
	}
	// The SDK sets method, path and headers from an input without records,
	// so they stay exactly the SDK's; only the body is replaced.
	bare := *in
	bare.Records = nil
	if err := p.ClientProtocol.SerializeRequest(ctx, schema, &bare, req); err != nil {
		return err
	}
	sreq, err := req.SetStream(bytes.NewReader(appendPutRecordsInput(nil, in)))
	if err != nil {
		return fmt.Errorf("set PutRecords body: %w", err)
	}
	*req = *sreq
	return nil
}

// appendPutRecordsInput writes in as the JSON document the SDK's awsJson
// serializer produces (members in the same order, absent pointers omitted).
func appendPutRecordsInput(dst []byte, in *kinesis.PutRecordsInput) []byte {
	size := 96
	for i := range in.Records {
		r := &in.Records[i]
		size += 48 + base64.StdEncoding.EncodedLen(len(r.Data)) + len(aws.ToString(r.PartitionKey)) + len(aws.ToString(r.ExplicitHashKey))
	}
	if dst == nil {
		dst = make([]byte, 0, size+len(aws.ToString(in.StreamARN))+len(aws.ToString(in.StreamName))+len(aws.ToString(in.StreamId)))
	}
	dst = append(dst, '{')
	comma := false
	member := func(name string) {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	if in.DryRun != nil {
		member("DryRun")
		dst = strconv.AppendBool(dst, *in.DryRun)
	}
	if in.Records != nil {
		member("Records")
		dst = append(dst, '[')
		for i := range in.Records {
			r := &in.Records[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			sep := ""
			if r.Data != nil {
				dst = append(dst, `"Data":"`...)
				dst = base64.StdEncoding.AppendEncode(dst, r.Data)
				dst = append(dst, '"')
				sep = ","
			}
			if r.ExplicitHashKey != nil {
				dst = append(dst, sep...)
				dst = append(dst, `"ExplicitHashKey":`...)
				dst = change.AppendJSONString(dst, *r.ExplicitHashKey)
				sep = ","
			}
			if r.PartitionKey != nil {
				dst = append(dst, sep...)
				dst = append(dst, `"PartitionKey":`...)
				dst = change.AppendJSONString(dst, *r.PartitionKey)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	for _, m := range []struct {
		name string
		v    *string
	}{{"StreamARN", in.StreamARN}, {"StreamId", in.StreamId}, {"StreamName", in.StreamName}} {
		if m.v != nil {
			member(m.name)
			dst = change.AppendJSONString(dst, *m.v)
		}
	}
	return append(dst, '}')
}

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (p *putRecordsProtocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, registry *smithy.TypeRegistry, resp *smithyhttp.Response, v smithy.Deserializable) error {
	out, ok := v.(*kinesis.PutRecordsOutput)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, registry, resp, v)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read PutRecords response: %w", err)}
	}
	if parsePutRecordsOutput(body, out) {
		return nil
	}
	*out = kinesis.PutRecordsOutput{}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return p.ClientProtocol.DeserializeResponse(ctx, schema, registry, resp, v)
}

// parsePutRecordsOutput reads the usual PutRecords answer: an object with
// Records (objects of plain strings), FailedRecordCount and EncryptionType.
// It returns false, leaving out partly filled, for anything else (escaped
// strings, nulls, nested unknown members, malformed JSON), which the SDK's
// decoder then reads or rejects.
func parsePutRecordsOutput(body []byte, out *kinesis.PutRecordsOutput) bool {
	sc := scanner{s: string(body)} // one copy; every string below shares it
	if !sc.byte('{') {
		return false
	}
	var strs []string // pointer targets, allocated in chunks
	str := func(s string) *string {
		if len(strs) == cap(strs) {
			strs = make([]string, 0, 64)
		}
		strs = append(strs, s)
		return &strs[len(strs)-1]
	}
	for first := true; !sc.byte('}'); first = false {
		if !first && !sc.byte(',') {
			return false
		}
		name, ok := sc.str()
		if !ok || !sc.byte(':') {
			return false
		}
		switch name {
		case "Records":
			if out.Records != nil || !sc.byte('[') {
				return false
			}
			out.Records = make([]types.PutRecordsResultEntry, 0, len(body)/80+1)
			for firstRec := true; !sc.byte(']'); firstRec = false {
				if (!firstRec && !sc.byte(',')) || !sc.byte('{') {
					return false
				}
				var e types.PutRecordsResultEntry
				for firstField := true; !sc.byte('}'); firstField = false {
					if !firstField && !sc.byte(',') {
						return false
					}
					field, ok := sc.str()
					if !ok || !sc.byte(':') {
						return false
					}
					var target **string
					switch field {
					case "SequenceNumber":
						target = &e.SequenceNumber
					case "ShardId":
						target = &e.ShardId
					case "ErrorCode":
						target = &e.ErrorCode
					case "ErrorMessage":
						target = &e.ErrorMessage
					default:
						if !sc.scalar() {
							return false
						}
						continue
					}
					s, ok := sc.str()
					if !ok || *target != nil {
						return false
					}
					*target = str(s)
				}
				out.Records = append(out.Records, e)
			}
		case "FailedRecordCount":
			tok, ok := sc.number()
			if !ok || out.FailedRecordCount != nil {
				return false
			}
			n, err := strconv.ParseInt(tok, 10, 32)
			if err != nil {
				return false
			}
			n32 := int32(n)
			out.FailedRecordCount = &n32
		case "EncryptionType":
			s, ok := sc.str()
			if !ok || out.EncryptionType != "" {
				return false
			}
			out.EncryptionType = types.EncryptionType(s)
		default:
			if !sc.scalar() {
				return false
			}
		}
	}
	sc.space()
	return sc.i == len(sc.s)
}

// scanner reads the plain subset of JSON that parsePutRecordsOutput accepts.
type scanner struct {
	s string
	i int
}

func (sc *scanner) space() {
	for sc.i < len(sc.s) && strings.IndexByte(" \t\n\r", sc.s[sc.i]) >= 0 {
		sc.i++
	}
}

// byte consumes c (after white space) if it is next.
func (sc *scanner) byte(c byte) bool {
	sc.space()
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters.
func (sc *scanner) str() (string, bool) {
	if !sc.byte('"') {
		return "", false
	}
	for j := sc.i; j < len(sc.s); j++ {
		switch c := sc.s[j]; {
		case c == '"':
			s := sc.s[sc.i:j]
			sc.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// number reads an integer.
func (sc *scanner) number() (string, bool) {
	sc.space()
	j := sc.i
	if j < len(sc.s) && sc.s[j] == '-' {
		j++
	}
	start := j
	for j < len(sc.s) && sc.s[j] >= '0' && sc.s[j] <= '9' {
		j++
	}
	if j == start || (sc.s[start] == '0' && j-start > 1) {
		return "", false
	}
	tok := sc.s[sc.i:j]
	sc.i = j
	return tok, true
}

// scalar skips an unknown member's value when it is a plain string, an
// integer, true or false.
func (sc *scanner) scalar() bool {
	sc.space()
	if sc.i >= len(sc.s) {
		return false
	}
	switch sc.s[sc.i] {
	case '"':
		_, ok := sc.str()
		return ok
	case 't', 'f':
		for _, lit := range []string{"true", "false"} {
			if len(sc.s)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
				sc.i += len(lit)
				return true
			}
		}
		return false
	default:
		_, ok := sc.number()
		return ok && (sc.i >= len(sc.s) || (sc.s[sc.i] != '.' && sc.s[sc.i] != 'e' && sc.s[sc.i] != 'E'))
	}
}
