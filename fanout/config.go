package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/fanout/publish"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/logging"
)

// config is fanout's settings, read from the environment (the same in Lambda
// and for the local poller). AWS settings (region, credentials, endpoints
// such as AWS_ENDPOINT_URL_EVENTBRIDGE and AWS_ENDPOINT_URL_KINESIS) come
// from the SDK's standard chain.
type config struct {
	// EventBus is WALBRIDGE_EVENT_BUS: a bus name or ARN ("default").
	EventBus string
	// Ordered is true for an ordered bus (EventBridgeV2): WALBRIDGE_EVENT_BUS
	// is an event-busv2 ARN, or WALBRIDGE_BUS_KIND=ordered (which then
	// requires one). WALBRIDGE_BUS_KIND=classic forces the classic API.
	Ordered bool
	// Event holds WALBRIDGE_SOURCE (default "walbridge.database"),
	// WALBRIDGE_DETAIL_TYPE ("DatabaseEvent") and WALBRIDGE_RESOURCE (the
	// record's database name).
	Event event.Config
	// MaxEventBytes is WALBRIDGE_MAX_EVENT_BYTES, the PutEvents size limit
	// (1048576; 262144 on accounts with the old limit).
	MaxEventBytes int
	// PublishMessages is WALBRIDGE_PUBLISH_MESSAGES: publish logical
	// messages as DatabaseMessage events instead of skipping them.
	PublishMessages bool
	// PublishSchemaChanges is WALBRIDGE_PUBLISH_SCHEMA_CHANGES: publish
	// capture's schema-change records as DatabaseSchemaChange events (on
	// unless false).
	PublishSchemaChanges bool
	// Concurrency is WALBRIDGE_PUBLISH_CONCURRENCY, PutEvents requests in
	// flight per invocation (4).
	Concurrency int
	// ClaimCheckBucket is WALBRIDGE_CLAIM_CHECK_BUCKET: an event over
	// MaxEventBytes keeps its largest values there, referenced, instead of
	// omitting them (capture's claim check does the same for records).
	ClaimCheckBucket string
	// Stream is WALBRIDGE_STREAM, the poller's default stream.
	Stream string
	// LogLevel is WALBRIDGE_LOG_LEVEL (info).
	LogLevel zapcore.Level
}

// loadConfig reads the settings; getenv is os.Getenv outside tests.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		EventBus:         "default",
		MaxEventBytes:    publish.DefaultMaxRequestBytes,
		Concurrency:      4,
		Stream:           getenv("WALBRIDGE_STREAM"),
		ClaimCheckBucket: getenv("WALBRIDGE_CLAIM_CHECK_BUCKET"),
		Event: event.Config{
			Source:     getenv("WALBRIDGE_SOURCE"),
			DetailType: getenv("WALBRIDGE_DETAIL_TYPE"),
			Resource:   getenv("WALBRIDGE_RESOURCE"),
		},
	}
	if v := getenv("WALBRIDGE_EVENT_BUS"); v != "" {
		c.EventBus = v
	}
	var problems []string
	switch kind := getenv("WALBRIDGE_BUS_KIND"); kind {
	case "":
		c.Ordered = orderedbus.IsBusARN(c.EventBus)
	case "classic":
	case "ordered":
		if !orderedbus.IsBusARN(c.EventBus) {
			problems = append(problems, fmt.Sprintf("WALBRIDGE_BUS_KIND=ordered needs WALBRIDGE_EVENT_BUS to be an ordered bus ARN (arn:aws:events:REGION:ACCOUNT:event-busv2/NAME/ID), not %q", c.EventBus))
		}
		c.Ordered = true
	default:
		problems = append(problems, fmt.Sprintf("WALBRIDGE_BUS_KIND=%q: want classic or ordered", kind))
	}
	intVar := func(name string, dst *int, min int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min {
				problems = append(problems, fmt.Sprintf("%s=%q: want an integer of at least %d", name, v, min))
				return
			}
			*dst = n
		}
	}
	intVar("WALBRIDGE_MAX_EVENT_BYTES", &c.MaxEventBytes, 1024)
	intVar("WALBRIDGE_PUBLISH_CONCURRENCY", &c.Concurrency, 1)
	if v := getenv("WALBRIDGE_PUBLISH_MESSAGES"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("WALBRIDGE_PUBLISH_MESSAGES=%q: want true or false", v))
		}
		c.PublishMessages = b
	}
	c.PublishSchemaChanges = true
	if v := getenv("WALBRIDGE_PUBLISH_SCHEMA_CHANGES"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("WALBRIDGE_PUBLISH_SCHEMA_CHANGES=%q: want true or false", v))
		}
		c.PublishSchemaChanges = b
	}
	if v := getenv("WALBRIDGE_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.Set(v); err != nil {
			problems = append(problems, fmt.Sprintf("WALBRIDGE_LOG_LEVEL=%q: %v", v, err))
		}
	}
	// EventBridge refuses these entry fields (or, for an overlong
	// detail-type, drops the event), so refuse them up front.
	if s := c.Event.Source; s != "" && (utf8.RuneCountInString(s) > 256 || strings.HasPrefix(s, "aws.")) {
		problems = append(problems, fmt.Sprintf("WALBRIDGE_SOURCE=%q: at most 256 characters, not starting with aws.", s))
	}
	if d := c.Event.DetailType; utf8.RuneCountInString(d) > 128 {
		problems = append(problems, fmt.Sprintf("WALBRIDGE_DETAIL_TYPE=%q: at most 128 characters", d))
	}
	if len(problems) > 0 {
		return config{}, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// newLogger is shared/logging's setup (JSON lines on stderr, what Lambda
// ships to CloudWatch) at the configured level.
func newLogger(level zapcore.Level) *zap.Logger {
	log, err := logging.New(level.String())
	if err != nil {
		// Only an unknown level fails, and loadConfig has checked it.
		return zap.NewNop()
	}
	return log
}
