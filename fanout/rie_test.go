package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/repo"
	"github.com/walbridge/walbridge/shared/syncbuf"
)

var update = flag.Bool("update", false, "rewrite testdata/kinesis-event.json")

// rieModule is the pinned Lambda Runtime Interface Emulator.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

const recordedEvent = "testdata/kinesis-event.json"

// recordedRecords are the records of testdata/kinesis-event.json: an insert,
// a transaction of two updates to the same row, a logical message, a record
// of a change-record version this build does not know, and an insert after
// it. Lambda should get back the fourth record as the batch item failure,
// after the first two records' three events were published.
func recordedRecords() []events.KinesisEventRecord {
	ins := userChange(1, 0)
	upd1, upd2 := userChange(1, 0), userChange(1, 1)
	for _, u := range []*change.Change{&upd1, &upd2} {
		u.Op, u.XID, u.CommitLSN = change.Update, 701, 0x6001
	}
	upd1.New[1].Text, upd2.New[1].Text = "secret-b@example.com", "secret-c@example.com"
	msg := change.Change{Database: "app", Op: change.Message, XID: 702, CommitLSN: 0x6100, Prefix: "audit", Content: []byte("hello"), Transactional: true}
	later := userChange(2, 0)
	recs := []events.KinesisEventRecord{
		recordOf(0, ins),
		recordOf(1, upd1, upd2),
		recordOf(2, msg),
		kinesisRecord(3, "public.users/1", []byte(`{"v":2,"changes":[{"database":"app","op":"insert"}]}`)),
		recordOf(4, later),
	}
	for i := range recs {
		recs[i].AwsRegion = "us-east-1"
		recs[i].InvokeIdentityArn = "arn:aws:iam::123456789012:role/walbridge-fanout"
		recs[i].Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: time.Date(2026, 11, 26, 5, 0, i, 0, time.UTC)}
	}
	return recs
}

// TestRecordedKinesisEvent keeps the recorded event in step with the
// records above (go test -run TestRecordedKinesisEvent -update rewrites it).
func TestRecordedKinesisEvent(t *testing.T) {
	want, err := json.MarshalIndent(events.KinesisEvent{Records: recordedRecords()}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(recordedEvent, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(recordedEvent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: go test ./fanout -run TestRecordedKinesisEvent -update", recordedEvent)
	}
}

// TestBootstrapUnderRIE builds the Lambda bootstrap the way
// scripts/build-fanout does (linux, lambda.norpc, no cgo), runs it under the
// pinned aws-lambda-rie (built from the module cache with go install into a
// temporary GOBIN), invokes it with the recorded Kinesis event and checks the
// batch item failures and the events the fake EventBridge received.
func TestBootstrapUnderRIE(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command(goTool, "build", "-tags", "lambda.norpc", "-o", filepath.Join(bin, "bootstrap"), "./fanout")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}
	install := exec.Command(goTool, "install", rieModule)
	install.Dir = bin // outside the module: go install pkg@version ignores it anyway
	install.Env = append(os.Environ(), "GOBIN="+bin, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", rieModule, err, out)
	}

	f := eventbridgetest.Start(t, eventbridgetest.Options{})
	rieAddr, apiAddr := freeAddr(t), freeAddr(t)
	rie := exec.Command(filepath.Join(bin, "aws-lambda-rie"), "--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr,
		filepath.Join(bin, "bootstrap"))
	rie.Dir = bin
	rie.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + bin,
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30", "AWS_LAMBDA_FUNCTION_NAME=walbridge-fanout",
		"AWS_ENDPOINT_URL_EVENTBRIDGE=" + f.URL,
		"WALBRIDGE_EVENT_BUS=walbridge", "WALBRIDGE_SOURCE=com.example.db",
	}
	var logs syncbuf.Buffer
	rie.Stdout, rie.Stderr = &logs, &logs
	rie.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := rie.Start(); err != nil {
		t.Fatalf("start aws-lambda-rie: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-rie.Process.Pid, syscall.SIGKILL)
		rie.Wait()
		if t.Failed() {
			t.Logf("aws-lambda-rie and bootstrap output:\n%s", logs.String())
		}
	})

	payload, err := os.ReadFile(recordedEvent)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + rieAddr + "/2015-03-31/functions/function/invocations"
	body := invokeWhenUp(t, url, payload)
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	var recorded events.KinesisEvent
	if err := json.Unmarshal(payload, &recorded); err != nil {
		t.Fatal(err)
	}
	wantSeq := recorded.Records[3].Kinesis.SequenceNumber
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != wantSeq {
		t.Errorf("response %s, want the batch item failure %s (record 3, unknown version)", body, wantSeq)
	}
	var got []string
	for _, ev := range f.Events() {
		var d struct {
			Operation string `json:"operation"`
			Seq       int    `json:"seq"`
		}
		json.Unmarshal([]byte(ev.Detail), &d)
		got = append(got, fmt.Sprintf("%s#%d", d.Operation, d.Seq))
		if ev.EventBusName != "walbridge" || ev.Source != "com.example.db" || ev.Resources[0] != "app" {
			t.Errorf("entry %+v", ev)
		}
	}
	if strings.Join(got, " ") != "insert#0 update#0 update#1" {
		t.Errorf("published %v, want the insert and the two updates", got)
	}

	// The batch's metrics, as an EMF line on the function's stdout.
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"_aws"`) {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatal("no EMF line in the function's output")
	}
	_, values, fields := checkEMF(t, []byte(line[strings.Index(line, "{"):]))
	if fields["Function"] != "walbridge-fanout" || values["EventsPublished"][0] != 3 || values["Records"][0] != float64(len(recorded.Records)) {
		t.Errorf("EMF line %s: want function walbridge-fanout, 3 events published, %d records", line, len(recorded.Records))
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// invokeWhenUp posts the payload once the emulator listens.
func invokeWhenUp(t *testing.T, url string, payload []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("invoke: HTTP %d: %s", resp.StatusCode, body)
			}
			return body
		}
		select {
		case <-ctx.Done():
			t.Fatalf("aws-lambda-rie did not answer: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
