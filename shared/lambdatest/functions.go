package lambdatest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"

	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/walbridge/walbridge/shared/awstest"
)

const functionsPath = "/2015-03-31/functions"

// Function is a function as the Lambda fake holds it, for assertions.
type Function struct {
	Name, Runtime, Handler, Role string
	Architectures                []string
	Timeout                      int // seconds
	Env                          map[string]string
	// Zip is the deployment package as last created or updated.
	Zip []byte
	// CodeUpdates counts the UpdateFunctionCode calls that replaced Zip.
	CodeUpdates int
}

// Function returns a copy of the function called name.
func (l *Server) Function(name string) (Function, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.functions[name]
	if f == nil {
		return Function{}, false
	}
	c := *f
	c.Architectures = slices.Clone(f.Architectures)
	c.Env = maps.Clone(f.Env)
	c.Zip = slices.Clone(f.Zip)
	return c, true
}

// File is the content of the named file in the function's deployment
// package.
func (f Function) File(name string) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(f.Zip), int64(len(f.Zip)))
	if err != nil {
		return "", fmt.Errorf("deployment package of %s: %w", f.Name, err)
	}
	r, err := zr.Open(name)
	if err != nil {
		return "", fmt.Errorf("deployment package of %s: %w", f.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("deployment package of %s: read %s: %w", f.Name, name, err)
	}
	return string(b), nil
}

// The API's constraints on CreateFunction's members.
var (
	functionNamePattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)
	rolePattern         = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	envKeyPattern       = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
	runtimes            = ltypes.Runtime("").Values()
)

// reservedEnv are environment variables Lambda sets itself and refuses in
// a function's configuration.
var reservedEnv = map[string]bool{
	"_HANDLER": true, "_X_AMZN_TRACE_ID": true, "AWS_DEFAULT_REGION": true, "AWS_REGION": true,
	"AWS_EXECUTION_ENV": true, "AWS_LAMBDA_FUNCTION_NAME": true, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true,
	"AWS_LAMBDA_FUNCTION_VERSION": true, "AWS_LAMBDA_INITIALIZATION_TYPE": true, "AWS_LAMBDA_LOG_GROUP_NAME": true,
	"AWS_LAMBDA_LOG_STREAM_NAME": true, "AWS_ACCESS_KEY": true, "AWS_ACCESS_KEY_ID": true,
	"AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true, "AWS_LAMBDA_RUNTIME_API": true,
	"LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true,
}

// createFunction deploys a function from a zip, checking the members as
// Lambda does. The function is Active at once: the fake does not make
// callers wait out Pending.
func (l *Server) createFunction(w http.ResponseWriter, body map[string]any) {
	name, _ := body["FunctionName"].(string)
	arn, base, err := l.resolveFunction(name)
	if err != nil || arn != l.functionArn(base, "") || !functionNamePattern.MatchString(base) {
		lambdaError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, functionNamePattern))
		return
	}
	f := &Function{Name: base, Timeout: 3, Architectures: []string{"x86_64"}}
	f.Runtime, _ = body["Runtime"].(string)
	f.Handler, _ = body["Handler"].(string)
	f.Role, _ = body["Role"].(string)
	if msg := checkFunction(f, body); msg != "" {
		lambdaError(w, http.StatusBadRequest, "ValidationException", "1 validation error detected: "+msg)
		return
	}
	for k := range f.Env {
		if reservedEnv[k] {
			lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: "+k)
			return
		}
	}
	if f.Runtime == "" || f.Handler == "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "Runtime and Handler are mandatory parameters for functions created with deployment packages.")
		return
	}
	code, _ := body["Code"].(map[string]any)
	var msg string
	if f.Zip, msg = unzipCheck(code); msg != "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", msg)
		return
	}
	if l.functions[base] != nil {
		lambdaError(w, http.StatusConflict, "ResourceConflictException", "Function already exist: "+base)
		return
	}
	l.functions[base] = f
	awstest.WriteJSON(w, "application/json", http.StatusCreated, l.functionView(f))
}

// checkFunction reads the optional members of a CreateFunction request
// into f and says which one breaks the API's constraints ("" if none).
func checkFunction(f *Function, body map[string]any) string {
	if !rolePattern.MatchString(f.Role) {
		return fmt.Sprintf("Value '%s' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", f.Role, rolePattern)
	}
	if f.Runtime != "" && !slices.Contains(runtimes, ltypes.Runtime(f.Runtime)) {
		return fmt.Sprintf("Value '%s' at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: %v", f.Runtime, runtimes)
	}
	if list, ok := body["Architectures"].([]any); ok {
		var a string
		if len(list) == 1 {
			a, _ = list[0].(string)
		}
		if a != "x86_64" && a != "arm64" {
			return fmt.Sprintf("Value '%v' at 'architectures' failed to satisfy constraint: Member must have length 1 and satisfy enum value set: [x86_64, arm64]", list)
		}
		f.Architectures = []string{a}
	}
	if n, ok := body["Timeout"].(json.Number); ok {
		t, err := strconv.Atoi(n.String())
		if err != nil || t < 1 || t > 900 {
			return fmt.Sprintf("Value '%s' at 'timeout' failed to satisfy constraint: Member must be between 1 and 900", n)
		}
		f.Timeout = t
	}
	env, _ := body["Environment"].(map[string]any)
	if vars, ok := env["Variables"].(map[string]any); ok {
		f.Env = map[string]string{}
		for k, v := range vars {
			if !envKeyPattern.MatchString(k) {
				return fmt.Sprintf("Value '%s' at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: %s]", k, envKeyPattern)
			}
			f.Env[k], _ = v.(string)
		}
	}
	return ""
}

// unzipCheck decodes a request's ZipFile and checks that it is a zip
// archive, as Lambda does on upload; the string says what is wrong.
func unzipCheck(code map[string]any) ([]byte, string) {
	b64, _ := code["ZipFile"].(string)
	if b64 == "" {
		return nil, "Please provide a source for function code. (This fake takes ZipFile only.)"
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err == nil {
		_, err = zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	}
	if err != nil {
		return nil, "Could not unzip uploaded file. Please check your file, then try to upload again."
	}
	return raw, ""
}

func (l *Server) updateFunctionCode(w http.ResponseWriter, name string, body map[string]any) {
	arn, base, err := l.resolveFunction(name)
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
		return
	}
	f := l.functions[base]
	if f == nil {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn)
		return
	}
	zipped, msg := unzipCheck(body)
	if msg != "" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", msg)
		return
	}
	f.Zip = zipped
	f.CodeUpdates++
	awstest.WriteJSON(w, "application/json", http.StatusOK, l.functionView(f))
}

// functionView is the FunctionConfiguration Lambda answers with.
func (l *Server) functionView(f *Function) map[string]any {
	sum := sha256.Sum256(f.Zip)
	v := map[string]any{
		"FunctionName": f.Name, "FunctionArn": l.functionArn(f.Name, ""),
		"Runtime": f.Runtime, "Role": f.Role, "Handler": f.Handler, "Timeout": f.Timeout, "MemorySize": 128,
		"Architectures": f.Architectures, "CodeSize": len(f.Zip), "CodeSha256": base64.StdEncoding.EncodeToString(sum[:]),
		"Version": "$LATEST", "PackageType": "Zip", "State": "Active", "LastUpdateStatus": "Successful",
	}
	if f.Env != nil {
		v["Environment"] = map[string]any{"Variables": f.Env}
	}
	return v
}
