// Package wire writes PutRecords request bodies and reads PutRecords answers
// by hand, inside the SDK's Kinesis client (see Protocol). It is the
// PutRecords path's CPU: at 100k changes/s the SDK's generic serializer and
// decoder cost two and a half times as much.
package wire

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/walbridge/walbridge/shared/jsontext"
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

// Protocol is a per-call client option (for PutRecords) installing
// putRecordsProtocol around the client's protocol.
func Protocol(o *kinesis.Options) {
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
				dst = jsontext.AppendString(dst, *r.ExplicitHashKey)
				sep = ","
			}
			if r.PartitionKey != nil {
				dst = append(dst, sep...)
				dst = append(dst, `"PartitionKey":`...)
				dst = jsontext.AppendString(dst, *r.PartitionKey)
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
			dst = jsontext.AppendString(dst, *m.v)
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
// Records (objects of plain strings), FailedRecordCount and EncryptionType,
// and members it does not know whose values are plain strings, integers,
// true or false. It returns false, leaving out partly filled, for anything
// else (escaped strings, nulls, nested unknown members, malformed JSON),
// which the SDK's decoder then reads or rejects.
func parsePutRecordsOutput(body []byte, out *kinesis.PutRecordsOutput) bool {
	var sc jsontext.Scanner
	sc.Reset(string(body)) // one copy; every string below shares it
	var strs []string      // pointer targets, allocated in chunks
	str := func() *string {
		s, escaped := sc.String()
		if escaped {
			sc.Fail("escaped string")
		}
		if len(strs) == cap(strs) {
			strs = make([]string, 0, 64)
		}
		strs = append(strs, s)
		return &strs[len(strs)-1]
	}
	scalar := func() { // an unknown member's value
		switch sc.Peek() {
		case '"':
			str()
		case 't', 'f':
			sc.Skip()
		default:
			if _, integer := sc.Number(); !integer {
				sc.Fail("unknown member is not a plain scalar")
			}
		}
	}
	once := func(set bool) {
		if set {
			sc.Fail("member given twice")
		}
	}
	sc.Object(func(name string) {
		switch name {
		case "Records":
			once(out.Records != nil)
			out.Records = make([]types.PutRecordsResultEntry, 0, len(body)/80+1)
			sc.Array(func() {
				var e types.PutRecordsResultEntry
				sc.Object(func(field string) {
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
						scalar()
						return
					}
					once(*target != nil)
					*target = str()
				})
				out.Records = append(out.Records, e)
			})
		case "FailedRecordCount":
			once(out.FailedRecordCount != nil)
			tok, integer := sc.Number()
			n, err := strconv.ParseInt(tok, 10, 32)
			if !integer || err != nil {
				sc.Fail("FailedRecordCount is not an int32")
				return
			}
			n32 := int32(n)
			out.FailedRecordCount = &n32
		case "EncryptionType":
			once(out.EncryptionType != "")
			out.EncryptionType = types.EncryptionType(*str())
		default:
			scalar()
		}
	})
	return sc.End()
}
