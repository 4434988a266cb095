package putrecords

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		fake    kinesistest.FakeOptions
		stream  string // default "fake"; "arn" uses the fake's ARN
		wantErr string // empty: Check passes
		maxKiB  int64
	}{
		{name: "provisioned and active", maxKiB: 1024},
		{name: "by ARN", stream: "arn", maxKiB: 1024},
		{name: "updating is fine", fake: kinesistest.FakeOptions{Status: types.StreamStatusUpdating}, maxKiB: 1024},
		{name: "larger records", fake: kinesistest.FakeOptions{MaxRecordSizeInKiB: 10240}, maxKiB: 10240},
		{name: "on-demand by partition key", fake: kinesistest.FakeOptions{Mode: types.StreamModeOnDemand, Distribution: types.RecordDistributionStrategyUserPartitionKey}, maxKiB: 1024},
		{name: "on-demand without a distribution strategy", fake: kinesistest.FakeOptions{Mode: types.StreamModeOnDemand}, maxKiB: 1024},
		{name: "on-demand AUTO", fake: kinesistest.FakeOptions{Mode: types.StreamModeOnDemand, Distribution: types.RecordDistributionStrategyAuto}, wantErr: "stream fake uses RecordDistributionStrategy AUTO"},
		{name: "missing", stream: "nope", wantErr: "stream nope not found"},
		{name: "creating", fake: kinesistest.FakeOptions{Status: types.StreamStatusCreating}, wantErr: "stream fake is CREATING; wait"},
		{name: "deleting", fake: kinesistest.FakeOptions{Status: types.StreamStatusDeleting}, wantErr: "stream fake is DELETING"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := kinesistest.StartFake(t, tt.fake)
			stream := tt.stream
			switch stream {
			case "":
				stream = "fake"
			case "arn":
				stream = f.ARN()
			}
			w, err := NewWriter(context.Background(), fakeClient(t, f.URL), Config{Stream: stream})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(context.Background())
			err = w.Check(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Check = %v, want an error containing %q", err, tt.wantErr)
			case tt.wantErr == "":
				if got := w.maxRecord.Load(); got != tt.maxKiB<<10 {
					t.Fatalf("max record = %d bytes, want %d KiB", got, tt.maxKiB)
				}
			}
		})
	}
}
