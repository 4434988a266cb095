package awstest

import (
	"net/http"
	"net/http/httptest"
)

// Endpoint is what every in-test endpoint has: its URL, the Log of the
// calls it received, its Faults, and the server behind them. Servers embed
// it and call Serve from their constructor.
type Endpoint struct {
	// URL is the endpoint, for the client's BaseEndpoint or the SDK's
	// AWS_ENDPOINT_URL_<SERVICE>.
	URL string
	// Log holds every call received, in order.
	Log *Log
	Faults

	srv *httptest.Server
}

// Serve starts the server with h; a nil log gives the endpoint a Log of its
// own.
func (e *Endpoint) Serve(h http.HandlerFunc, log *Log) {
	if log == nil {
		log = &Log{}
	}
	e.Log = log
	e.srv = httptest.NewServer(h)
	e.URL = e.srv.URL
}

// Close stops the server.
func (e *Endpoint) Close() { e.srv.Close() }

// Place is where an endpoint's resources live, for their ARNs and URLs.
type Place struct {
	// Region and Account (ID) default to us-east-1 and 000000000000.
	Region, Account string
}

// WithDefaults fills what is empty.
func (a Place) WithDefaults() Place {
	if a.Region == "" {
		a.Region = "us-east-1"
	}
	if a.Account == "" {
		a.Account = "000000000000"
	}
	return a
}
