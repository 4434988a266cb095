package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/localfn"
)

// Exit statuses: 2 means localbus was called wrongly or could not start.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// params is the repeatable --param NAME=VALUE flag.
type params map[string]string

func (p params) String() string { return "" }

func (p params) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	p[name] = value
	return nil
}

// run is the whole command behind main: it serves the bus until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("localbus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:4010", "address to listen on; port 0 picks a free one")
	rulesDir := fs.String("rules", "infra", "folder of CloudFormation/SAM templates, with dev rules in its dev-rules/")
	region := fs.String("region", localbus.DefaultRegion, "region of the delivered events and of AWS::Region in templates")
	logFile := fs.String("log", "", "also write each event and its matches to this file, as JSON lines")
	tparams := params{}
	fs.Var(tparams, "param", "template parameter value, NAME=VALUE (repeatable); others take their Default")
	maxAttempts := fs.Int("max-attempts", 5, "most POSTs of one event to a dev rule's HTTP target")
	maxAge := fs.Duration("max-age", time.Minute, "how long an event is retried to an HTTP target")
	maxRequest := fs.Int("max-request-bytes", 1<<20, "PutEvents limit on a request's entries together")
	functions := fs.Bool("functions", true, "run the Lambda functions rules target (handlers from scripts/newhandler, Go and TypeScript) under aws-lambda-rie on the events they match; false only names them")
	rie := fs.String("rie", filepath.Join("bin", "aws-lambda-rie"), "the Lambda runtime interface emulator (scripts/install-deps puts it in bin/)")
	workDir := fs.String("work-dir", filepath.Join(".dev", "functions"), "where functions are built")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "localbus: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}

	loadOpts := localbus.LoadOptions{Region: *region, Params: tparams}
	watcher := localbus.NewWatcher(*rulesDir, loadOpts)
	rules, err := localbus.Load(*rulesDir, loadOpts)
	if err != nil {
		fmt.Fprintf(stderr, "localbus: %v\n", err)
		return exitUsage
	}
	opts := localbus.Options{
		Region:          *region,
		MaxRequestBytes: *maxRequest,
		Out:             stdout,
		Retry:           localbus.RetryPolicy{MaxAttempts: *maxAttempts, MaxAge: *maxAge},
	}
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			fmt.Fprintf(stderr, "localbus: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		opts.JSONLines = f
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "localbus: %v\n", err)
		return exitUsage
	}
	attach := func(rules []localbus.Rule) []localbus.Rule { return rules }
	if *functions {
		m := localfn.NewManager(localfn.Options{RIE: *rie, WorkDir: *workDir}, func(string) io.Writer { return stdout }, stderr)
		defer m.Close()
		attach = func(rules []localbus.Rule) []localbus.Rule { return m.Attach(ctx, rules) }
	}
	bus := localbus.New(attach(rules.Rules), opts)
	defer bus.Close()
	srv := &http.Server{Handler: bus, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	rules.Report(stderr)
	fmt.Fprintf(stderr, "localbus: %d rules loaded, %d skipped; set AWS_ENDPOINT_URL_EVENTBRIDGE=http://%s\n", len(rules.Rules), len(rules.Skipped), ln.Addr())
	if len(rules.Skipped) > 0 {
		fmt.Fprintln(stderr, "localbus: template parameters without a Default take a value from --param NAME=VALUE")
	}

	// Rules reload when their files change: a new rule matches the next event.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go watcher.Run(watchCtx, time.Second, func(rs *localbus.RuleSet) {
		fmt.Fprintf(stderr, "localbus: %s changed: %d rules loaded, %d skipped\n", *rulesDir, len(rs.Rules), len(rs.Skipped))
		rs.Report(stderr)
		bus.SetRules(attach(rs.Rules))
	})

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "localbus: %v\n", err)
		return exitError
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "localbus: shutdown: %v\n", err)
		return exitError
	}
	<-served // http.ErrServerClosed
	return exitOK
}
