package putrecords

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// responseError wraps err the way the SDK does for an HTTP answer.
func responseError(status int, err error) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
		RequestID:     "req",
	}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		reason string
		retry  bool
	}{
		{"throughput exceeded", responseError(400, &types.ProvisionedThroughputExceededException{}), reasonThrottled, true},
		{"throttling", responseError(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), reasonThrottled, true},
		{"KMS throttling", responseError(400, &types.KMSThrottlingException{}), reasonThrottled, true},
		{"internal failure", responseError(500, &types.InternalFailureException{}), reasonInternal, true},
		{"503 service unavailable", responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), reasonInternal, true},
		{"502 with an unreadable body", responseError(502, &smithy.DeserializationError{Err: io.ErrUnexpectedEOF}), reasonServer, true},
		{"429", responseError(429, &smithy.GenericAPIError{Code: "Whatever"}), reasonThrottled, true},
		{"expired token", responseError(400, &smithy.GenericAPIError{Code: "ExpiredTokenException"}), reasonCredentials, true},
		{"after the SDK's own retries", &retry.MaxAttemptsError{Attempt: 3, Err: responseError(500, &types.InternalFailureException{})}, reasonInternal, true},
		{"retry quota exhausted", errors.Join(responseError(400, &types.ProvisionedThroughputExceededException{}), errors.New("retry quota exceeded")), reasonThrottled, true},
		{"connection refused", &smithy.OperationError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, reasonTransport, true},
		{"client timeout", fmt.Errorf("request: %w", context.DeadlineExceeded), reasonTransport, true},
		{"validation", responseError(400, &smithy.GenericAPIError{Code: "ValidationException"}), "", false},
		{"invalid argument", responseError(400, &types.InvalidArgumentException{}), "", false},
		{"access denied", responseError(400, &types.AccessDeniedException{}), "", false},
		{"resource not found", responseError(400, &types.ResourceNotFoundException{}), "", false},
		{"KMS key disabled", responseError(400, &types.KMSDisabledException{}), "", false},
		{"client-side validation", &smithy.OperationError{Err: smithy.InvalidParamsError{Context: "PutRecordsInput"}}, "", false},
		{"serialization", &smithy.OperationError{Err: &smithy.SerializationError{Err: errors.New("bad")}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, retry := classify(tt.err)
			if reason != tt.reason || retry != tt.retry {
				t.Fatalf("classify(%v) = %q, %v; want %q, %v", tt.err, reason, retry, tt.reason, tt.retry)
			}
		})
	}
}

func TestRetryableEntryCodes(t *testing.T) {
	for code, want := range map[string]bool{
		"ProvisionedThroughputExceededException": true,
		"InternalFailure":                        true,
		"KMSThrottlingException":                 true,
		"KMSDisabledException":                   false,
		"SomethingNew":                           false,
	} {
		if got := retryableEntry(code); got != want {
			t.Errorf("retryableEntry(%s) = %v, want %v", code, got, want)
		}
	}
}
