package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// sdkProtocol is the protocol the Kinesis client installs by itself.
func sdkProtocol() smithyhttp.ClientProtocol { return awsjson.New11(schemas.Kinesis_20131202) }

func putRecordsSchema() *smithy.OperationSchema {
	return smithy.NewOperationSchema(schemas.PutRecords, schemas.PutRecordsInput, schemas.PutRecordsOutput)
}

func serialize(t *testing.T, p smithyhttp.ClientProtocol, in *kinesis.PutRecordsInput) (*smithyhttp.Request, []byte) {
	t.Helper()
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := p.SerializeRequest(context.Background(), putRecordsSchema(), in, req); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.GetStream())
	if err != nil {
		t.Fatal(err)
	}
	return req, body
}

func TestPutRecordsBodyMatchesSDK(t *testing.T) {
	odd := "quote\" back\\slash /slash \n\r\t\x01\x1f del\x7f é 漢字 \u2028\u2029 <>&"
	tests := []struct {
		name string
		in   kinesis.PutRecordsInput
	}{
		{"typical", kinesis.PutRecordsInput{StreamName: aws.String("changes"), Records: []types.PutRecordsRequestEntry{
			{Data: []byte(`{"v":1,"changes":[]}`), PartitionKey: aws.String("public.users/1")},
			{Data: []byte{0, 1, 2, 250, 251, 252, 253, 254, 255}, PartitionKey: aws.String("public.users/2")},
		}}},
		{"arn, hash key, dry run", kinesis.PutRecordsInput{StreamARN: aws.String("arn:aws:kinesis:eu-west-1:123456789012:stream/changes"),
			DryRun: aws.Bool(true), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), ExplicitHashKey: aws.String("170141183460469231731687303715884105728"), PartitionKey: aws.String("k")}}}},
		{"odd strings", kinesis.PutRecordsInput{StreamName: aws.String(odd), StreamId: aws.String(odd), Records: []types.PutRecordsRequestEntry{{Data: []byte(odd), PartitionKey: aws.String(odd)}}}},
		{"empty and absent data", kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte{}, PartitionKey: aws.String("a")}, {PartitionKey: aws.String("b")}, {Data: []byte("c")}}}},
		{"empty records", kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{}}},
		{"nothing", kinesis.PutRecordsInput{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantReq, wantBody := serialize(t, sdkProtocol(), &tc.in)
			gotReq, gotBody := serialize(t, &putRecordsProtocol{ClientProtocol: sdkProtocol()}, &tc.in)
			if gotReq.Method != wantReq.Method || gotReq.URL.Path != wantReq.URL.Path || !reflect.DeepEqual(gotReq.Header, wantReq.Header) {
				t.Errorf("request line/headers differ:\n got %s %s %v\nwant %s %s %v", gotReq.Method, gotReq.URL.Path, gotReq.Header, wantReq.Method, wantReq.URL.Path, wantReq.Header)
			}
			if gotReq.ContentLength != int64(len(gotBody)) {
				t.Errorf("content length %d for a %d-byte body", gotReq.ContentLength, len(gotBody))
			}
			var got, want any
			if err := json.Unmarshal(gotBody, &got); err != nil {
				t.Fatalf("our body is not JSON: %v\n%s", err, gotBody)
			}
			if err := json.Unmarshal(wantBody, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("bodies differ:\n got %s\nwant %s", gotBody, wantBody)
			}
		})
	}
}

// putRecordsResponses are answers as Kinesis writes them, and odd ones the
// fast reader must hand to the SDK.
var putRecordsResponses = []struct {
	name string
	body string
	fast bool // the fast reader handles it itself
}{
	{"all accepted", `{"EncryptionType":"NONE","FailedRecordCount":0,"Records":[{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"},{"SequenceNumber":"49590338271490256608559692540925702759324208523137515618","ShardId":"shardId-000000000001"}]}`, true},
	{"partial failure", `{"FailedRecordCount":2,"Records":[{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream changes under account 111111111111."},{"SequenceNumber":"1","ShardId":"shardId-000000000000"},{"ErrorCode":"InternalFailure","ErrorMessage":"Internal service failure."}]}`, true},
	{"white space and unknown scalars", " {\n \"Records\" : [ { \"ShardId\" : \"s\" , \"Extra\" : 12 , \"SequenceNumber\" : \"2\" } ] ,\r\n\t\"FailedRecordCount\" : 0, \"Future\": true, \"Other\": \"x\", \"EncryptionType\":\"KMS\" } ", true},
	{"empty", `{}`, true},
	{"no records", `{"FailedRecordCount":0,"Records":[]}`, true},
	{"escaped message", `{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"a \"quoted\" \u00e9 message"}]}`, false},
	{"nested unknown", `{"Records":[{"SequenceNumber":"1","ShardId":"s","Meta":{"a":[1,2]}}],"FailedRecordCount":0}`, false},
	{"null member", `{"Records":[{"SequenceNumber":"1","ShardId":null}],"FailedRecordCount":0}`, false},
	{"float count (the SDK refuses it)", `{"FailedRecordCount":0.0,"Records":[]}`, false},
	{"malformed", `{"Records":[{"SequenceNumber":"1"`, false},
	{"unicode", `{"Records":[{"ErrorCode":"X","ErrorMessage":"débit dépassé 漢字"}],"FailedRecordCount":1}`, true},
}

func deserialize(p smithyhttp.ClientProtocol, status int, body string) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{}
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Body: io.NopCloser(strings.NewReader(body))}}
	err := p.DeserializeResponse(context.Background(), putRecordsSchema(), kinesis.TypeRegistry, resp, out)
	return out, err
}

func TestPutRecordsResponseMatchesSDK(t *testing.T) {
	for _, tc := range putRecordsResponses {
		t.Run(tc.name, func(t *testing.T) {
			if ok := parsePutRecordsOutput([]byte(tc.body), &kinesis.PutRecordsOutput{}); ok != tc.fast {
				t.Errorf("fast reader handled it: %v, want %v", ok, tc.fast)
			}
			want, wantErr := deserialize(sdkProtocol(), 200, tc.body)
			got, err := deserialize(&putRecordsProtocol{ClientProtocol: sdkProtocol()}, 200, tc.body)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v, the SDK's %v", err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("outputs differ:\n got %s\nwant %s", dump(got), dump(want))
			}
		})
	}
	// Error answers are the SDK's to read, into the SDK's error types.
	body := `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for stream changes"}`
	_, want := deserialize(sdkProtocol(), 400, body)
	_, got := deserialize(&putRecordsProtocol{ClientProtocol: sdkProtocol()}, 400, body)
	var pte *types.ProvisionedThroughputExceededException
	if got == nil || want == nil || got.Error() != want.Error() || !errors.As(got, &pte) {
		t.Errorf("error answer: got %v, want %v", got, want)
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FuzzPutRecordsResponse: whatever the fast reader accepts, the SDK's
// decoder reads to the same output.
func FuzzPutRecordsResponse(f *testing.F) {
	for _, tc := range putRecordsResponses {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got kinesis.PutRecordsOutput
		if !parsePutRecordsOutput(body, &got) {
			return
		}
		want, err := deserialize(sdkProtocol(), 200, string(body))
		if err != nil {
			t.Fatalf("fast reader accepted %q, the SDK says %v", body, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%q: fast %s, SDK %s", body, dump(&got), dump(want))
		}
	})
}

// BenchmarkPutRecordsSerde compares a 500-record request's encoding and its
// answer's decoding, the SDK's against the hand-written path.
func BenchmarkPutRecordsSerde(b *testing.B) {
	in := &kinesis.PutRecordsInput{StreamName: aws.String("changes")}
	data := bytes.Repeat([]byte(`{"v":1,"changes":[{"database":"app","schema":"public","table":"orders"}]}`), 6)
	var resp strings.Builder
	resp.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range 500 {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String("public.orders/" + strings.Repeat("7", i%12+1))})
		if i > 0 {
			resp.WriteByte(',')
		}
		resp.WriteString(`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000003"}`)
	}
	resp.WriteString(`],"EncryptionType":"NONE"}`)
	for _, p := range []struct {
		name string
		p    smithyhttp.ClientProtocol
	}{{"sdk", sdkProtocol()}, {"fast", &putRecordsProtocol{ClientProtocol: sdkProtocol()}}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
				if err := p.p.SerializeRequest(context.Background(), putRecordsSchema(), in, req); err != nil {
					b.Fatal(err)
				}
				if _, err := deserialize(p.p, 200, resp.String()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
