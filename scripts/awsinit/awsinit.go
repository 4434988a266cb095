package main

import (
	"archive/zip"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/walbridge/walbridge/shared/provision"
	"github.com/walbridge/walbridge/shared/sdkbody"
)

type options struct {
	stream, bus, template, bootstrap, function, database, arch string
	shards                                                     int
	skipFanout                                                 bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("awsinit", flag.ContinueOnError)
	fs.StringVar(&o.stream, "stream", "walbridge", "Kinesis stream to create")
	fs.IntVar(&o.shards, "shards", 2, "shards of a new stream")
	fs.StringVar(&o.bus, "bus", "walbridge", "event bus to create (default: the default bus)")
	fs.StringVar(&o.template, "template", "infra/template.yaml", "template whose rules are put on the bus")
	fs.StringVar(&o.database, "database", "app", "database name: the events' resources entry, for the rules")
	fs.StringVar(&o.bootstrap, "bootstrap", "bin/fanout-amd64/bootstrap", "fanout's built bootstrap (scripts/build-fanout)")
	fs.StringVar(&o.arch, "arch", "x86_64", "the function's architecture: x86_64 or arm64")
	fs.StringVar(&o.function, "function", "walbridge-fanout", "function name")
	fs.BoolVar(&o.skipFanout, "skip-fanout", false, "create stream, bus and rules only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := sdkbody.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	streamARN, err := provision.Stream(ctx, kinesis.NewFromConfig(cfg), o.stream, int32(o.shards))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "stream", o.stream, "ready:", streamARN)
	eb := eventbridge.NewFromConfig(cfg)
	if err := provision.Bus(ctx, eb, o.bus); err != nil {
		return err
	}
	fmt.Fprintln(out, "event bus", o.bus, "ready")
	rules, err := provision.Rules(ctx, eb, sqs.NewFromConfig(cfg), o.bus, o.template,
		map[string]string{"ResourceName": o.database, "EventBusName": o.bus})
	if err != nil {
		return err
	}
	for _, r := range rules {
		fmt.Fprintln(out, "rule", r)
	}
	if o.skipFanout {
		return nil
	}
	zipped, err := zipBootstrap(o.bootstrap)
	if err != nil {
		return err
	}
	err = provision.Fanout(ctx, lambda.NewFromConfig(cfg), provision.FanoutFunction{
		Name: o.function, Zip: zipped, Arch: ltypes.Architecture(o.arch), StreamARN: streamARN, BatchSize: 100,
		Role: "arn:aws:iam::000000000000:role/walbridge-fanout",
		Env:  map[string]string{"WALBRIDGE_EVENT_BUS": o.bus, "WALBRIDGE_RESOURCE": o.database},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "function", o.function, "deployed with its event source mapping")
	return nil
}

// zipBootstrap packs the binary as Lambda wants it: one executable named
// bootstrap at the root of the archive.
func zipBootstrap(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fanout bootstrap (run scripts/build-fanout): %w", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
