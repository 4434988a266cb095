package sdkbody

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// closedOnAnswer is a request body as smithy-go makes it: readable until
// closed, with a WriteTo, and closed by the SDK once Do returns. Whatever
// net/http reads or copies after the Content-Length bytes waits for that
// close, as it does when the server answers first, and then ends the way
// smithy's body does: WriteTo with io.EOF as an error, Read with io.EOF.
type closedOnAnswer struct {
	data   *bytes.Reader
	closed chan struct{}
}

func (b *closedOnAnswer) Read(p []byte) (int, error) {
	if b.data.Len() == 0 {
		<-b.closed
		return 0, io.EOF
	}
	return b.data.Read(p)
}

func (b *closedOnAnswer) WriteTo(w io.Writer) (int64, error) {
	<-b.closed
	return 0, io.EOF
}

func (b *closedOnAnswer) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func TestAnswerSurvivesTheBodysClose(t *testing.T) {
	answer := bytes.Repeat([]byte("a"), 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the whole body, then the answer
		w.Write(answer)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		guarded bool
	}{{"guarded", true}, {"as the SDK sends it", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aws.Config{HTTPClient: &http.Client{Transport: &http.Transport{}}}
			if tc.guarded {
				Guard(&cfg)
			}
			payload := bytes.Repeat([]byte("p"), 4096)
			body := &closedOnAnswer{data: bytes.NewReader(payload), closed: make(chan struct{})}
			wrote := make(chan error, 1)
			trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) { wrote <- i.Err }}
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodPost, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(payload))
			resp, err := cfg.HTTPClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body.Close() // what smithy does when Do returns
			writeErr := <-wrote
			got, readErr := io.ReadAll(resp.Body)
			ok := writeErr == nil && readErr == nil && len(got) == len(answer)
			if ok != tc.guarded {
				t.Errorf("request write: %v; answer: %d of %d bytes, %v", writeErr, len(got), len(answer), readErr)
			}
		})
	}
}

func TestGuardKeepsNoBodyAndWrapsOnce(t *testing.T) {
	var seen []io.ReadCloser
	cfg := aws.Config{HTTPClient: recordBody(func(r *http.Request) { seen = append(seen, r.Body) })}
	Guard(&cfg)
	Guard(&cfg)
	if _, ok := cfg.HTTPClient.(client).next.(client); ok {
		t.Fatal("Guard wrapped its own client")
	}
	for _, b := range []io.ReadCloser{http.NoBody, io.NopCloser(bytes.NewReader([]byte("x")))} {
		req, _ := http.NewRequest(http.MethodPost, "http://example.invalid", nil)
		req.Body = b
		cfg.HTTPClient.Do(req)
	}
	if seen[0] != http.NoBody {
		t.Errorf("http.NoBody became %T", seen[0])
	}
	if _, ok := seen[1].(io.WriterTo); ok {
		t.Errorf("a body still has WriteTo: %T", seen[1])
	}
}

type recordBody func(*http.Request)

func (f recordBody) Do(r *http.Request) (*http.Response, error) {
	f(r)
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestGuardWithoutAClientMakesTheSDKsOwn(t *testing.T) {
	var cfg aws.Config
	Guard(&cfg)
	c, ok := cfg.HTTPClient.(client)
	if !ok {
		t.Fatalf("HTTPClient is %T, want the guard", cfg.HTTPClient)
	}
	if _, ok := c.next.(*awshttp.BuildableClient); !ok {
		t.Errorf("the guard wraps %T, want the SDK's BuildableClient", c.next)
	}
}

// TestLoadDefaultConfigGuards: the loader every program uses hands back a
// guarded client, with the options it was given applied.
func TestLoadDefaultConfigGuards(t *testing.T) {
	cfg, err := LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.HTTPClient.(client); !ok {
		t.Errorf("HTTP client %T, want the guard", cfg.HTTPClient)
	}
	if cfg.Region != "eu-west-3" {
		t.Errorf("region %q: the options were not applied", cfg.Region)
	}
}
