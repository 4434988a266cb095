package cfnrules

import (
	"gopkg.in/yaml.v3"
)

// Function is a Lambda function a template declares (AWS::Serverless::Function
// or AWS::Lambda::Function), with what it takes to run its code elsewhere:
// where the code is and how it starts. SAM's Globals.Function fills what a
// function leaves out.
type Function struct {
	// ID is the function's logical ID and Type its resource type.
	ID, Type string
	// CodeURI is a SAM function's CodeUri when it is a literal path (empty
	// for an S3 location, inline code or an intrinsic).
	CodeURI string
	// Runtime and Handler as written: "nodejs24.x" and "handler.handler",
	// or "provided.al2023" and "bootstrap".
	Runtime, Handler string
	// Inline marks a function whose code is in the template (InlineCode,
	// Code.ZipFile).
	Inline bool
	// Timeout is the function's Timeout in seconds as written, or empty.
	Timeout string
}

// Functions returns the Lambda functions of a CloudFormation or SAM
// template, in template order. A document that parses but is not a template
// gives an error wrapping ErrNotTemplate.
func Functions(data []byte) ([]Function, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	t, err := parse(data, Options{})
	if err != nil {
		return nil, err
	}
	globals := lookup(lookup(unalias(&doc), "Globals"), "Function")
	// Globals apply to SAM functions only.
	prop := func(typ string, props *yaml.Node, key string) string {
		if v := scalar(lookup(props, key)); v != "" || typ != "AWS::Serverless::Function" {
			return v
		}
		return scalar(lookup(globals, key))
	}
	var out []Function
	for i := 0; i+1 < len(t.resources.Content); i += 2 {
		res := unalias(t.resources.Content[i+1])
		typ := scalar(lookup(res, "Type"))
		if typ != "AWS::Serverless::Function" && typ != "AWS::Lambda::Function" {
			continue
		}
		props := lookup(res, "Properties")
		f := Function{ID: t.resources.Content[i].Value, Type: typ,
			Runtime: prop(typ, props, "Runtime"), Handler: prop(typ, props, "Handler"), Timeout: prop(typ, props, "Timeout")}
		if typ == "AWS::Serverless::Function" {
			f.CodeURI = prop(typ, props, "CodeUri")
			f.Inline = lookup(props, "InlineCode") != nil
		} else {
			f.Inline = lookup(lookup(props, "Code"), "ZipFile") != nil
		}
		out = append(out, f)
	}
	return out, nil
}
