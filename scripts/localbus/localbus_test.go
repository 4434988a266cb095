package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"go.uber.org/goleak"

	"github.com/walbridge/walbridge/shared/localbus"
	"github.com/walbridge/walbridge/shared/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const template = `
Parameters:
  DetailType:
    Type: String
    Default: DatabaseEvent
Resources:
  WelcomeQueue:
    Type: AWS::SQS::Queue
  UsersInsertRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: walbridge
      EventPattern:
        detail-type: [!Ref DetailType]
        detail: {table: [users], operation: [insert]}
      Targets:
        - {Id: welcome, Arn: !GetAtt WelcomeQueue.Arn}
`

// readListening returns the URL from the first line of out.
func readListening(t *testing.T, out *bufio.Reader) string {
	t.Helper()
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want listening http://127.0.0.1:PORT", line)
	}
	return url
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "events.jsonl")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stdout, stderr syncbuf.Buffer
	status := make(chan int, 1)
	go func() {
		status <- run(ctx, []string{"--addr", "127.0.0.1:0", "--rules", dir, "--region", "eu-central-1", "--log", logFile}, pw, &stderr)
		pw.Close()
	}()
	out := bufio.NewReader(pr)
	url := readListening(t, out)
	copied := make(chan struct{})
	go func() { io.Copy(&stdout, out); close(copied) }()

	c := eventbridge.New(eventbridge.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(url),
	})
	res, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		Source:       aws.String("walbridge"),
		DetailType:   aws.String("DatabaseEvent"),
		Detail:       aws.String(`{"schema":"public","table":"users","operation":"insert"}`),
		EventBusName: aws.String("walbridge"),
	}}})
	if err != nil || res.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v, %+v", err, res)
	}

	cancel()
	select {
	case s := <-status:
		if s != exitOK {
			t.Errorf("status %d, want %d; stderr:\n%s", s, exitOK, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	<-copied

	id := aws.ToString(res.Entries[0].EventId)
	for _, want := range []string{"event " + id + " on bus walbridge\n", `"region": "eu-central-1"`, "  matched rule UsersInsertRule (" + filepath.Join(dir, "template.yaml") + ") → target WelcomeQueue (AWS::SQS::Queue)\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if want := "rule UsersInsertRule (" + filepath.Join(dir, "template.yaml") + ") on bus walbridge → WelcomeQueue (AWS::SQS::Queue)\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var rec localbus.Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Event.ID != id || len(rec.Matches) != 1 || bytes.Count(data, []byte("\n")) != 1 {
		t.Errorf("log file %s: want one JSON line for event %s (%v)", data, id, err)
	}
}

func TestRunUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"bad param", []string{"--param", "novalue"}, "want NAME=VALUE"},
		{"missing rules folder", []string{"--rules", filepath.Join(t.TempDir(), "none")}, "rules folder"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"bad address", []string{"--rules", t.TempDir(), "--addr", "127.0.0.1:notaport"}, "localbus:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if s := run(context.Background(), tc.args, &stdout, &stderr); s != exitUsage {
				t.Errorf("status %d, want %d", s, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// TestSignal runs the built command as a script would: read the address
// from the first line, then stop it with SIGTERM.
func TestSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "localbus")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--rules", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // in case the test fails first; harmless after exit
	readListening(t, bufio.NewReader(stdout))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("no exit within 10s of SIGTERM")
	}
}
