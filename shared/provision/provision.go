// Package provision creates the AWS resources a local walbridge pipeline
// needs, idempotently: the Kinesis stream, the event bus, the rules of a
// template with an SQS queue standing in for each target, and the fanout
// function with its Kinesis event source mapping. scripts/dev uses the stream
// part against the Kinesis emulator; scripts/awsinit (docker-compose's init
// step) uses all of it against LocalStack.
package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/walbridge/walbridge/shared/cfnrules"
	"github.com/walbridge/walbridge/shared/pattern"
)

// Stream creates the stream (shards, provisioned) unless it exists, waits
// until it is ACTIVE and returns its ARN.
func Stream(ctx context.Context, c *kinesis.Client, name string, shards int32) (string, error) {
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *ktypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return "", fmt.Errorf("create stream %s: %w", name, err)
	}
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 500*time.Millisecond
	})
	out, err := w.WaitForOutput(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, time.Minute)
	if err != nil {
		return "", fmt.Errorf("wait for stream %s: %w", name, err)
	}
	return aws.ToString(out.StreamDescription.StreamARN), nil
}

// Bus creates a custom event bus unless it exists ("default" always does).
func Bus(ctx context.Context, c *eventbridge.Client, name string) error {
	if name == "" || name == "default" {
		return nil
	}
	_, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
	var exists *ebtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create event bus %s: %w", name, err)
	}
	return nil
}

// Rules puts every valid rule of a CloudFormation/SAM template on bus ("" is
// the default bus), with an SQS queue named after the rule as its target
// (the template's targets are deploy-time resources). Invalid patterns are
// an error: they would be in AWS too.
func Rules(ctx context.Context, eb *eventbridge.Client, q *sqs.Client, bus, templatePath string, params map[string]string) ([]string, error) {
	data, err := os.ReadFile(templatePath)
	if err != nil {
		return nil, err
	}
	rules, err := cfnrules.Rules(data, cfnrules.Options{Params: params, Defaults: true})
	if err != nil {
		return nil, fmt.Errorf("rules of %s: %w", templatePath, err)
	}
	// EventBridge refuses an empty EventBusName: the default bus is the
	// member left out.
	var busName *string
	if bus != "" {
		busName = aws.String(bus)
	}
	var done []string
	for _, r := range rules {
		if r.Err != nil {
			return nil, fmt.Errorf("rule %s in %s: %w", r.ID, templatePath, r.Err)
		}
		if errs := pattern.CheckJSON(r.Pattern, pattern.CheckOptions{}); len(errs) > 0 {
			return nil, fmt.Errorf("rule %s in %s: %w", r.ID, templatePath, errs)
		}
		if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(r.ID), EventBusName: busName, EventPattern: aws.String(string(r.Pattern))}); err != nil {
			return nil, fmt.Errorf("put rule %s: %w", r.ID, err)
		}
		queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queueName(r.ID))})
		if err != nil {
			return nil, fmt.Errorf("create queue for rule %s: %w", r.ID, err)
		}
		attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			return nil, fmt.Errorf("queue ARN for rule %s: %w", r.ID, err)
		}
		put, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(r.ID), EventBusName: busName,
			Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}})
		if err != nil {
			return nil, fmt.Errorf("put target of rule %s: %w", r.ID, err)
		}
		// A target can fail inside a successful answer.
		if len(put.FailedEntries) > 0 {
			f := put.FailedEntries[0]
			return nil, fmt.Errorf("put target of rule %s: target %s: %s: %s", r.ID, aws.ToString(f.TargetId), aws.ToString(f.ErrorCode), aws.ToString(f.ErrorMessage))
		}
		done = append(done, r.ID+" → SQS "+aws.ToString(queue.QueueUrl))
	}
	return done, nil
}

// queueName is the SQS queue standing in for a rule's targets: the rule's
// ID in lower case, with the dots of a SAM event's ID ("Fn.Events.Name"),
// which SQS does not allow in names, as dashes.
func queueName(ruleID string) string {
	return strings.ToLower(strings.ReplaceAll(ruleID, ".", "-"))
}

// FanoutFunction describes the function Fanout deploys.
type FanoutFunction struct {
	Name      string
	Zip       []byte // a zip holding bootstrap
	Arch      ltypes.Architecture
	Role      string // LocalStack accepts any role ARN
	Env       map[string]string
	StreamARN string
	BatchSize int32
}

// Fanout creates (or updates the code of) the fanout function and gives it a
// Kinesis event source mapping with the same safety settings as
// infra/template.yaml: partial batch responses, bisect, bounded retries and
// record age.
func Fanout(ctx context.Context, c *lambda.Client, f FanoutFunction) error {
	_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName:  aws.String(f.Name),
		Runtime:       ltypes.RuntimeProvidedal2023,
		Handler:       aws.String("bootstrap"),
		Architectures: []ltypes.Architecture{f.Arch},
		Role:          aws.String(f.Role),
		Code:          &ltypes.FunctionCode{ZipFile: f.Zip},
		Environment:   &ltypes.Environment{Variables: f.Env},
		Timeout:       aws.Int32(60),
	})
	var exists *ltypes.ResourceConflictException
	switch {
	case errors.As(err, &exists):
		if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(f.Name), ZipFile: f.Zip}); err != nil {
			return fmt.Errorf("update function %s: %w", f.Name, err)
		}
	case err != nil:
		return fmt.Errorf("create function %s: %w", f.Name, err)
	}
	list, err := c.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String(f.Name), EventSourceArn: aws.String(f.StreamARN)})
	if err != nil {
		return fmt.Errorf("list event source mappings: %w", err)
	}
	if len(list.EventSourceMappings) > 0 {
		return nil
	}
	_, err = c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName:               aws.String(f.Name),
		EventSourceArn:             aws.String(f.StreamARN),
		StartingPosition:           ltypes.EventSourcePositionTrimHorizon,
		BatchSize:                  aws.Int32(max(f.BatchSize, 1)),
		FunctionResponseTypes:      []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures},
		BisectBatchOnFunctionError: aws.Bool(true),
		MaximumRetryAttempts:       aws.Int32(10),
		MaximumRecordAgeInSeconds:  aws.Int32(3600),
	})
	if err != nil {
		return fmt.Errorf("create event source mapping: %w", err)
	}
	return nil
}
