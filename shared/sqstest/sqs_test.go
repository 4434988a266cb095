package sqstest

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/walbridge/walbridge/shared/awstest"
)

func sdkConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

func sqsClient(url string) *sqs.Client {
	return sqs.NewFromConfig(sdkConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(url) })
}

func TestSQSReceiveDeleteVisibility(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	url := f.CreateQueue("dlq")
	id1 := f.Send(url, `{"n":1}`)
	f.Send(url, `{"n":2}`)
	c := sqsClient(f.URL)

	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MaxNumberOfMessages: 1, VisibilityTimeout: 60,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err) // includes the SDK's MD5 check
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].MessageId) != id1 || aws.ToString(out.Messages[0].Body) != `{"n":1}` {
		t.Fatalf("received %+v", out.Messages)
	}
	if got := out.Messages[0].Attributes["ApproximateReceiveCount"]; got != "1" {
		t.Errorf("ApproximateReceiveCount = %q", got)
	}
	handle := out.Messages[0].ReceiptHandle

	// The first message is in flight: the next receive gets the second.
	out2, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil || len(out2.Messages) != 1 || aws.ToString(out2.Messages[0].Body) != `{"n":2}` {
		t.Fatalf("second receive: %v %+v", err, out2)
	}
	// Released, it is received again, with a new handle.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: handle, VisibilityTimeout: 0}); err != nil {
		t.Fatalf("ChangeMessageVisibility: %v", err)
	}
	out3, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil || len(out3.Messages) != 1 || aws.ToString(out3.Messages[0].MessageId) != id1 || aws.ToString(out3.Messages[0].ReceiptHandle) == aws.ToString(handle) {
		t.Fatalf("receive after release: %v %+v", err, out3)
	}
	// The old handle no longer deletes; the new one does.
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: handle}); err != nil {
		t.Fatalf("DeleteMessage with old handle: %v", err)
	}
	if n := len(f.Messages(url)); n != 2 {
		t.Fatalf("old handle deleted a message: %d left", n)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: out3.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if left := f.Messages(url); len(left) != 1 || left[0].Body != `{"n":2}` || !left[0].InFlight {
		t.Fatalf("left = %+v", left)
	}

	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.URL + "/000000000000/nope")})
	var qdne *sqstypes.QueueDoesNotExist
	if !errors.As(err, &qdne) {
		t.Errorf("unknown queue: err = %v, want QueueDoesNotExist", err)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("garbage")})
	var bad *sqstypes.ReceiptHandleIsInvalid
	if !errors.As(err, &bad) {
		t.Errorf("bad handle: err = %v, want ReceiptHandleIsInvalid", err)
	}

	lines := f.Log.Lines()
	if want := "sqs ReceiveMessage MaxNumberOfMessages=1 MessageSystemAttributeNames.0=All QueueUrl=" + url + " VisibilityTimeout=60"; lines[0] != want {
		t.Errorf("first call\n got %s\nwant %s", lines[0], want)
	}
}

func TestRecorder(t *testing.T) {
	log := &awstest.Log{}
	srv := Start(t, Options{Log: &awstest.Log{}})
	url := srv.CreateQueue("q")
	rec := awstest.Recorder{Log: log, Service: "queue", TargetPrefix: "AmazonSQS.", Next: http.DefaultClient}
	c := sqs.NewFromConfig(sdkConfig(), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.HTTPClient = rec
	})
	if _, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	got := log.Lines()
	if want := "queue ReceiveMessage QueueUrl=" + url + " WaitTimeSeconds=1"; len(got) != 1 || got[0] != want {
		t.Errorf("recorded %q, want %q", got, want)
	}
	if srv.Log.Lines()[0] != strings.Replace(got[0], "queue", "sqs", 1) {
		t.Errorf("the server saw %q", srv.Log.Lines())
	}
}

func TestSQSCreateQueueAndAttributes(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	c := sqsClient(f.URL)

	// Creating a queue again with the same attributes gives the same URL.
	var url string
	for i := 0; i < 2; i++ {
		out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders-dlq")})
		if err != nil {
			t.Fatalf("CreateQueue %d: %v", i, err)
		}
		if i > 0 && aws.ToString(out.QueueUrl) != url {
			t.Errorf("second CreateQueue gave %s, first %s", aws.ToString(out.QueueUrl), url)
		}
		url = aws.ToString(out.QueueUrl)
	}
	if got := f.Queues(); len(got) != 1 || got[0] != url || url != f.URL+"/000000000000/orders-dlq" {
		t.Fatalf("queues %v, url %s", got, url)
	}
	f.Send(url, "x")
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	want := map[string]string{"QueueArn": "arn:aws:sqs:us-east-1:000000000000:orders-dlq", "ApproximateNumberOfMessages": "1"}
	if !reflect.DeepEqual(attrs.Attributes, want) {
		t.Errorf("attributes %v, want %v", attrs.Attributes, want)
	}

	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"name with a dot", func() error {
			_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fn.events.x")})
			return err
		}, "InvalidParameterValue"},
		{"name too long", func() error {
			_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(strings.Repeat("q", 81))})
			return err
		}, "InvalidParameterValue"},
		{"same name, other attributes", func() error {
			_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders-dlq"), Attributes: map[string]string{"VisibilityTimeout": "60"}})
			return err
		}, "QueueAlreadyExists"},
		{"attributes of no queue", func() error {
			_, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(f.URL + "/000000000000/nope")})
			return err
		}, "AWS.SimpleQueueService.NonExistentQueue"},
		{"unknown attribute", func() error {
			_, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"Colour"}})
			return err
		}, "InvalidAttributeName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apiErr smithy.APIError
			if err := tt.call(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.code {
				t.Errorf("err = %v, want %s", err, tt.code)
			}
		})
	}

	f.Fail("CreateQueue", "AccessDenied", "not allowed")
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("other")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" || len(f.Queues()) != 1 {
		t.Errorf("failed CreateQueue: err = %v, queues %v", err, f.Queues())
	}
}
