package lambdatest

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// zipOf is a zip archive holding one file.
func zipOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err == nil {
		_, err = w.Write([]byte(content))
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func createInput(zipped []byte) *lambda.CreateFunctionInput {
	return &lambda.CreateFunctionInput{
		FunctionName:  aws.String("fanout"),
		Runtime:       ltypes.RuntimeProvidedal2023,
		Handler:       aws.String("bootstrap"),
		Role:          aws.String("arn:aws:iam::000000000000:role/fanout"),
		Architectures: []ltypes.Architecture{ltypes.ArchitectureArm64},
		Code:          &ltypes.FunctionCode{ZipFile: zipped},
		Environment:   &ltypes.Environment{Variables: map[string]string{"WALBRIDGE_EVENT_BUS": "walbridge"}},
		Timeout:       aws.Int32(60),
	}
}

func TestLambdaCreateAndUpdateFunction(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{Settle: -1})
	c := lambdaClient(f.URL)
	v1, v2 := zipOf(t, "bootstrap", "v1"), zipOf(t, "bootstrap", "v2")

	out, err := c.CreateFunction(ctx, createInput(v1))
	if err != nil {
		t.Fatalf("CreateFunction: %v", err)
	}
	if aws.ToString(out.FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:fanout" || out.State != ltypes.StateActive || out.CodeSize != int64(len(v1)) {
		t.Errorf("CreateFunction answered %+v", out)
	}
	_, err = c.CreateFunction(ctx, createInput(v1))
	var conflict *ltypes.ResourceConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("CreateFunction again: err = %v, want ResourceConflictException", err)
	}
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("fanout"), ZipFile: v2}); err != nil {
		t.Fatalf("UpdateFunctionCode: %v", err)
	}
	got, ok := f.Function("fanout")
	if !ok || got.Runtime != "provided.al2023" || got.Handler != "bootstrap" || got.Role != "arn:aws:iam::000000000000:role/fanout" ||
		got.Timeout != 60 || len(got.Architectures) != 1 || got.Architectures[0] != "arm64" || got.Env["WALBRIDGE_EVENT_BUS"] != "walbridge" ||
		!bytes.Equal(got.Zip, v2) || got.CodeUpdates != 1 {
		t.Errorf("function %+v", got)
	}
	// A created function can be an event source.
	if _, err := c.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String("fanout"), EventSourceArn: aws.String(streamArn), StartingPosition: ltypes.EventSourcePositionLatest,
	}); err != nil {
		t.Errorf("mapping of a created function: %v", err)
	}

	lines := f.Log.Lines()
	want := "lambda CreateFunction Architectures.0=arm64 Environment.Variables.WALBRIDGE_EVENT_BUS=walbridge FunctionName=fanout " +
		"Handler=bootstrap Role=arn:aws:iam::000000000000:role/fanout Runtime=provided.al2023 Timeout=60"
	if lines[0] != want {
		t.Errorf("first call\n got %s\nwant %s", lines[0], want)
	}
	if want := "lambda UpdateFunctionCode FunctionName=fanout"; lines[2] != want {
		t.Errorf("third call %s, want %s", lines[2], want)
	}
}

func TestLambdaFunctionValidation(t *testing.T) {
	ctx := context.Background()
	f := Start(t, Options{})
	c := lambdaClient(f.URL)
	good := zipOf(t, "bootstrap", "x")
	tests := []struct {
		name   string
		change func(*lambda.CreateFunctionInput)
		code   string
	}{
		{"name with a dot", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("fan.out") }, "ValidationException"},
		{"qualified name", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("fanout:live") }, "ValidationException"},
		{"role not an ARN", func(in *lambda.CreateFunctionInput) { in.Role = aws.String("fanout-role") }, "ValidationException"},
		{"unknown runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = "go1.26" }, "ValidationException"},
		{"unknown architecture", func(in *lambda.CreateFunctionInput) { in.Architectures = []ltypes.Architecture{"amd64"} }, "ValidationException"},
		{"two architectures", func(in *lambda.CreateFunctionInput) {
			in.Architectures = []ltypes.Architecture{ltypes.ArchitectureX8664, ltypes.ArchitectureArm64}
		}, "ValidationException"},
		{"timeout too long", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) }, "ValidationException"},
		{"environment key with a dash", func(in *lambda.CreateFunctionInput) { in.Environment.Variables["EVENT-BUS"] = "x" }, "ValidationException"},
		{"reserved environment key", func(in *lambda.CreateFunctionInput) { in.Environment.Variables["AWS_REGION"] = "x" }, "InvalidParameterValueException"},
		{"no handler", func(in *lambda.CreateFunctionInput) { in.Handler = nil }, "InvalidParameterValueException"},
		{"not a zip", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = []byte("#!/bin/sh\n") }, "InvalidParameterValueException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := createInput(good)
			tt.change(in)
			_, err := c.CreateFunction(ctx, in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.code {
				t.Errorf("err = %v, want %s", err, tt.code)
			}
		})
	}
	if _, ok := f.Function("fanout"); ok {
		t.Error("a refused CreateFunction created the function")
	}

	_, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("fanout"), ZipFile: good})
	var nf *ltypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("UpdateFunctionCode of no function: err = %v, want ResourceNotFoundException", err)
	}
	f.AddFunction("fanout")
	f.Fail("UpdateFunctionCode", "AccessDeniedException", "not allowed")
	_, err = c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("fanout"), ZipFile: good})
	if !errors.As(err, new(smithy.APIError)) || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("failed UpdateFunctionCode: err = %v", err)
	}
	if got, _ := f.Function("fanout"); got.CodeUpdates != 0 {
		t.Errorf("a failed update changed the code")
	}
}
