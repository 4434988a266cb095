// Command fanout publishes walbridge's change records as EventBridge
// DatabaseEvents. In Lambda (AWS_LAMBDA_RUNTIME_API set) it serves a Kinesis
// event source mapping; elsewhere "fanout poll" reads the stream itself and
// calls the same handler.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	ctx := context.Background()
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		app, err := newApp(ctx, os.Getenv, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fanout:", err)
			os.Exit(1)
		}
		// Each batch's figures go to stdout as Embedded Metric Format
		// lines; the function's log group makes them metrics.
		lambda.Start(app.handler.withEMF(os.Stdout, os.Getenv("AWS_LAMBDA_FUNCTION_NAME")).Handle)
		return
	}
	os.Exit(command(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
