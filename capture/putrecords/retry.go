package putrecords

import (
	"errors"

	"github.com/aws/smithy-go"
)

// Retry reasons, the label values of walbridge_kinesis_retries_total.
const (
	reasonThrottled   = "throttled"   // throughput exceeded, throttling, KMS throttling
	reasonInternal    = "internal"    // InternalFailure, ServiceUnavailable and kin
	reasonServer      = "server"      // another 5xx response
	reasonTransport   = "transport"   // no usable response: connection, timeout, credentials
	reasonCredentials = "credentials" // expired token or request, refreshed on retry
)

var retryReasons = []string{reasonThrottled, reasonInternal, reasonServer, reasonTransport, reasonCredentials}

// retryCodes are the API error codes worth retrying, with their reason.
// Anything else that Kinesis answers (validation, access denied, resource
// not found, KMS key problems) is fatal: a retry cannot fix it.
var retryCodes = map[string]string{
	"ProvisionedThroughputExceededException": reasonThrottled,
	"ThrottlingException":                    reasonThrottled,
	"Throttling":                             reasonThrottled,
	"ThrottledException":                     reasonThrottled,
	"TooManyRequestsException":               reasonThrottled,
	"RequestThrottled":                       reasonThrottled,
	"RequestThrottledException":              reasonThrottled,
	"RequestLimitExceeded":                   reasonThrottled,
	"LimitExceededException":                 reasonThrottled,
	"KMSThrottlingException":                 reasonThrottled,
	"SlowDown":                               reasonThrottled,
	"InternalFailure":                        reasonInternal,
	"InternalFailureException":               reasonInternal,
	"InternalError":                          reasonInternal,
	"InternalServerError":                    reasonInternal,
	"ServiceUnavailable":                     reasonInternal,
	"ServiceUnavailableException":            reasonInternal,
	"RequestTimeout":                         reasonTransport,
	"RequestTimeoutException":                reasonTransport,
	"ExpiredToken":                           reasonCredentials,
	"ExpiredTokenException":                  reasonCredentials,
	"RequestExpired":                         reasonCredentials,
}

// classify says whether a failed call is worth retrying, and why. The
// caller checks its own context first: a canceled call is not retried.
func classify(err error) (reason string, retry bool) {
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		if r, ok := retryCodes[ae.ErrorCode()]; ok {
			return r, true
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		switch s := status.HTTPStatusCode(); {
		case s == 429:
			return reasonThrottled, true
		case s >= 500:
			return reasonServer, true
		}
	}
	var params smithy.InvalidParamsError
	var ser *smithy.SerializationError
	switch {
	case isAPI, errors.As(err, &params), errors.As(err, &ser):
		return "", false
	}
	// No answer from Kinesis at all: connection refused or reset, a timeout,
	// a response that could not be read, credentials that could not be
	// fetched. Capture must not drop changes, so these are retried for as
	// long as the writer lives.
	return reasonTransport, true
}

// retryableEntry says whether a PutRecords entry's ErrorCode is worth a
// retry. AWS documents only ProvisionedThroughputExceededException and
// InternalFailure; an unknown code is fatal rather than retried blindly.
func retryableEntry(code string) bool {
	_, ok := retryCodes[code]
	return ok
}

// entryReason is the retry reason for an entry's ErrorCode.
func entryReason(code string) string {
	if r, ok := retryCodes[code]; ok {
		return r
	}
	return reasonInternal
}
