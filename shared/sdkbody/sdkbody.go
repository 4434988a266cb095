// Package sdkbody keeps the AWS SDK's request bodies from breaking the
// connection an answer is being read on.
//
// smithy-go (the SDK's HTTP layer) closes a request's body as soon as the
// client's Do returns, that is, when the answer's headers have arrived. After
// writing a body's Content-Length bytes, net/http copies whatever the body
// still holds to io.Discard, and a server that answers once it has read the
// body can answer before that copy runs. The SDK's body has a WriteTo method,
// which io.Copy prefers, and once the body is closed WriteTo reports io.EOF as
// an error; net/http takes that for a failed write and closes the connection,
// and the answer, still being read on it, fails with "use of closed network
// connection". The SDK then reports a request that succeeded as a transport
// error, and its caller sends it again: capture saw about one PutRecords in a
// thousand re-sent under load (duplicates downstream), fanout's PutEvents is
// exposed the same way. A body without WriteTo is copied with Read, and a
// closed body's Read ends with io.EOF, which is the end of a copy, not an
// error.
package sdkbody

import (
	"context"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// LoadDefaultConfig is config.LoadDefaultConfig with Guard applied: how
// every walbridge program and test loads its AWS configuration, so that no
// client is made from an unguarded one.
func LoadDefaultConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return cfg, err
	}
	Guard(&cfg)
	return cfg, nil
}

// Guard makes cfg's HTTP client hand request bodies to net/http without
// their WriteTo method. LoadDefaultConfig above calls it on the
// configuration config.LoadDefaultConfig returns (which has applied
// AWS_CA_BUNDLE and the other settings to the client it wraps); call it
// yourself only on a configuration made otherwise, before making service
// clients from it. Service clients
// then take the client as it is: AWS_DEFAULTS_MODE's connect and TLS
// timeouts, which they would set on the SDK's own client type, do not apply
// (walbridge sets no defaults mode).
func Guard(cfg *aws.Config) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = awshttp.NewBuildableClient() // what service clients would make
	}
	if _, ok := cfg.HTTPClient.(client); ok {
		return
	}
	cfg.HTTPClient = client{cfg.HTTPClient}
}

// client is an aws.HTTPClient whose requests' bodies are readOnly.
type client struct{ next aws.HTTPClient }

func (c client) Do(r *http.Request) (*http.Response, error) {
	// http.NoBody stays itself: net/http tells "no body" by its identity.
	if _, ok := r.Body.(io.WriterTo); ok && r.Body != http.NoBody {
		r.Body = readOnly{r.Body}
	}
	return c.next.Do(r)
}

// readOnly is a body with Read and Close only.
type readOnly struct{ io.ReadCloser }
