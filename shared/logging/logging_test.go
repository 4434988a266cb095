package logging

import (
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	smithylogging "github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewLevels(t *testing.T) {
	for _, tc := range []struct {
		level   string
		wantErr bool
	}{{"", false}, {"debug", false}, {"warn", false}, {"loud", true}} {
		log, err := New(tc.level)
		if (err != nil) != tc.wantErr {
			t.Errorf("New(%q) error = %v, want error %v", tc.level, err, tc.wantErr)
		}
		if err == nil && log == nil {
			t.Errorf("New(%q) returned nil logger", tc.level)
		}
	}
}

func TestAWSOptions(t *testing.T) {
	for _, tc := range []struct {
		level     zapcore.Level
		wantRetry bool
		wantLines int // of the two lines logged below: a warning and a debug line
	}{
		{zapcore.InfoLevel, false, 1},
		{zapcore.DebugLevel, true, 2},
	} {
		core, logs := observer.New(tc.level)
		var lo awsconfig.LoadOptions
		for _, opt := range AWSOptions(zap.New(core)) {
			if err := opt(&lo); err != nil {
				t.Fatal(err)
			}
		}
		if got := lo.ClientLogMode != nil && lo.ClientLogMode.IsRetries(); got != tc.wantRetry {
			t.Errorf("level %v: retry logging %v, want %v", tc.level, got, tc.wantRetry)
		}
		lo.Logger.Logf(smithylogging.Warn, "retrying %s", "PutRecords")
		lo.Logger.Logf(smithylogging.Debug, "attempt %d", 2)
		if logs.Len() != tc.wantLines || logs.All()[0].Level != zapcore.WarnLevel || logs.All()[0].Message != "retrying PutRecords" {
			t.Errorf("level %v: logged %+v", tc.level, logs.All())
		}
	}
}
