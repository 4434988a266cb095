package awstest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/walbridge/walbridge/shared/sdkbody"
)

// Config is an SDK config for a local endpoint: static test credentials,
// us-east-1, and the SDK's default (buildable) HTTP client, so that an
// AWS_CA_BUNDLE in the environment keeps working.
func Config(tb testing.TB) aws.Config {
	tb.Helper()
	cfg, err := sdkbody.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		tb.Fatalf("load AWS config: %v", err)
	}
	return cfg
}
