package awstest

import (
	"path/filepath"
	"testing"
)

// IsolateEnv makes the SDK's default configuration chain, as a tool under
// test loads it, see only the test: static test credentials, us-east-1, no
// profile, no config or credentials file and no instance metadata from the
// machine, and the given environment (the AWS_ENDPOINT_URL_* of the fakes,
// or anything else a test needs) on top. t.Setenv restores it all.
func IsolateEnv(t testing.TB, env map[string]string) {
	t.Helper()
	dir := t.TempDir()
	base := map[string]string{
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           "test",
		"AWS_SECRET_ACCESS_KEY":       "test",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
}
