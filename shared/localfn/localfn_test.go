package localfn_test

// These tests run handlers that scripts/newhandler writes, built the way
// their templates say, under the pinned aws-lambda-rie (bin/, from
// scripts/install-deps), as targets of the local bus: real builds, a real
// emulator, real invocations through the bus's delivery workers.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/localfn"
	"github.com/walbridge/walbridge/shared/repo"
	"github.com/walbridge/walbridge/shared/s3test"
	"github.com/walbridge/walbridge/shared/syncbuf"
)

// generate writes a handler with scripts/newhandler into a folder of the
// module (a Go handler is a package of it) and returns the handler's folder.
func generate(t *testing.T, root, name, language string) string {
	t.Helper()
	out, err := os.MkdirTemp(filepath.Join(root, "shared", "localfn", "testdata"), "gen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	cmd := exec.Command("go", "run", "./scripts/newhandler", "--name", name, "--table", "users", "--operation", "insert", "--language", language, "--out", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("newhandler: %v\n%s", err, b)
	}
	return filepath.Join(out, name)
}

func rie(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(root, "bin", "aws-lambda-rie")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("aws-lambda-rie is not installed (scripts/install-deps installs it in bin/): %v", err)
	}
	return bin
}

// bus loads dir's rules, attaches their functions and serves the bus.
func bus(t *testing.T, m *localfn.Manager, dir string) (*localbus.Bus, *eventbridge.Client) {
	t.Helper()
	rs, err := localbus.Load(dir, localbus.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 1 {
		t.Fatalf("loaded %d rules from %s, want the handler's one", len(rs.Rules), dir)
	}
	b := localbus.New(m.Attach(context.Background(), rs.Rules), localbus.Options{
		Retry: localbus.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
	})
	t.Cleanup(func() { b.Close() })
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, eventbridgetest.Client(t, srv.URL)
}

// putSample publishes the handler's put-events.json, each entry's detail
// changed by edit when given, and waits for the delivery of its event to
// finish.
func putSample(t *testing.T, b *localbus.Bus, c *eventbridge.Client, dir string, edit ...func(detail string) string) localbus.Delivery {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "put-events.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []types.PutEventsRequestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		for _, e := range edit {
			entries[i].Detail = aws.String(e(aws.ToString(entries[i].Detail)))
		}
	}
	before := len(b.Deliveries())
	resp, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
	if err != nil || resp.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, resp)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d := b.Deliveries(); len(d) > before {
			return d[len(d)-1]
		}
	}
	t.Fatal("no delivery finished within a minute")
	return localbus.Delivery{}
}

func TestGeneratedHandlersRunOnTheLocalBus(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		language, name string
		// logLine is what the handler logs for the sample event.
		logLine string
		// breakIt makes the handler fail.
		breakIt func(t *testing.T, dir string)
	}{
		{"typescript", "users-insert-ts", `{"message":"database event","table":"public.users","operation":"insert"`, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "handler.ts"), "  // The handler's work goes here.\n", "  throw new Error(\"no mail server\");\n")
		}},
		{"go", "users-insert-go", `"msg":"database event","table":"public.users","operation":"insert"`, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "main.go"), "\t// The handler's work goes here.\n\treturn nil\n", "\treturn fmt.Errorf(\"no mail server\")\n")
		}},
	} {
		t.Run(tc.language, func(t *testing.T) {
			dir := generate(t, root, tc.name, tc.language)
			var out, report syncbuf.Buffer
			s3 := s3test.Start(t, "values")
			m := localfn.NewManager(localfn.Options{RIE: rie(t, root), WorkDir: t.TempDir(), Env: s3.Env()}, func(string) io.Writer { return &out }, &report)
			t.Cleanup(m.Close)
			t.Cleanup(func() {
				if t.Failed() || os.Getenv("LOCALFN_SHOW") != "" {
					t.Logf("manager:\n%s\nfunction output:\n%s", report.String(), out.String())
				}
			})
			b, c := bus(t, m, dir)
			d := putSample(t, b, c, dir)
			if !d.Delivered {
				t.Fatalf("delivery %+v, want delivered", d)
			}
			if !strings.Contains(out.String(), tc.logLine) {
				t.Errorf("the handler's log line %s is not in its output", tc.logLine)
			}
			if tc.language == "typescript" && !strings.Contains(d.Result, `"table":"public.users","operation":"insert"`) {
				t.Errorf("the handler returned %q, want its outcome", d.Result)
			}

			// A value the claim check keeps in S3 arrives as a reference: the
			// handler's one helper call resolves it (checking its hash).
			email := strings.Repeat("ü", 40) + "@example.com"
			ref, err := claimcheck.New(s3test.Client(t, s3.URL), "values").Put(context.Background(), email)
			if err != nil {
				t.Fatal(err)
			}
			withRef := func(detail string) string {
				var d map[string]any
				json.Unmarshal([]byte(detail), &d)
				d["newValues"].(map[string]any)["email"] = map[string]any{"type": "string", "s3": map[string]string{"bucket": ref.Bucket, "key": ref.Key}, "bytes": len(email), "sha256": ref.SHA256}
				b, _ := json.Marshal(d)
				return string(b)
			}
			if d := putSample(t, b, c, dir, withRef); !d.Delivered {
				t.Errorf("an event with a reference: delivery %+v, want delivered", d)
			} else if tc.language == "typescript" && !strings.Contains(d.Result, `"email":"`+email+`"`) {
				t.Errorf("the handler returned %q, want the resolved email", d.Result)
			}
			tampered := func(detail string) string {
				return strings.Replace(withRef(detail), ref.SHA256, strings.Repeat("0", 64), 1)
			}
			if d := putSample(t, b, c, dir, tampered); d.Delivered || !strings.Contains(d.Err, "function error") {
				t.Errorf("a reference whose hash does not match: delivery %+v, want a function error", d)
			}

			// An edit is built again; an error is a failed delivery, retried.
			tc.breakIt(t, dir)
			b, c = bus(t, m, dir)
			d = putSample(t, b, c, dir)
			if d.Delivered || d.Attempts != 2 || !strings.Contains(d.Err, "function error") || !strings.Contains(d.Err, "no mail server") {
				t.Errorf("delivery %+v, want 2 failed attempts with the handler's error", d)
			}
			if !strings.Contains(report.String(), "building "+strings.ReplaceAll(title(tc.name), "-", "")) {
				t.Errorf("manager report has no build of the function:\n%s", report.String())
			}
		})
	}
}

func edit(t *testing.T, file, old, new string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s has no %q", file, old)
	}
	// A new modification time, even within the file system's resolution.
	if err := os.WriteFile(file, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(file, later, later)
}

// title turns users-insert-ts into Users-Insert-Ts.
func title(s string) string {
	parts := strings.Split(s, "-")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "-")
}
