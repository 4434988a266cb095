// Package logging is the one logger setup both stages use: zap, JSON lines to
// stderr, ISO 8601 times. Row values are logged only at debug level by
// convention of the callers; this package makes debug opt-in.
package logging

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	smithylogging "github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds a JSON logger at level ("debug", "info", "warn", "error";
// empty means info).
func New(level string) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.TimeKey = "time"
	cfg.Sampling = nil
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// AWSOptions are the aws-sdk-go-v2 config options that route the SDK's own
// log lines into log at debug level and, when debug is on, turn on its retry
// log: a request the SDK re-sends by itself (a dropped connection, a 5xx)
// never reaches our retry counters, so this is the only place it shows. The
// SDK's request and response bodies are never logged (they hold row values).
func AWSOptions(log *zap.Logger) []func(*awsconfig.LoadOptions) error {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger{log.Named("aws")})}
	if log.Core().Enabled(zapcore.DebugLevel) {
		opts = append(opts, awsconfig.WithClientLogMode(aws.LogRetries))
	}
	return opts
}

// sdkLogger adapts zap to smithy-go's logging.Logger.
type sdkLogger struct{ log *zap.Logger }

func (l sdkLogger) Logf(class smithylogging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	// The EC2 metadata client's fallbacks ("falling back to IMDSv1") are
	// chatter off EC2, where the chain goes on to fail with its own error.
	if class == smithylogging.Warn && !strings.Contains(msg, "IMDS") {
		l.log.Warn(msg)
		return
	}
	if ce := l.log.Check(zapcore.DebugLevel, "aws sdk"); ce != nil {
		ce.Write(zap.String("detail", msg))
	}
}
