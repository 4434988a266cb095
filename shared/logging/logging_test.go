package logging

import "testing"

func TestNewLevels(t *testing.T) {
	for _, tc := range []struct {
		level   string
		wantErr bool
	}{{"", false}, {"debug", false}, {"warn", false}, {"loud", true}} {
		log, err := New(tc.level)
		if (err != nil) != tc.wantErr {
			t.Errorf("New(%q) error = %v, want error %v", tc.level, err, tc.wantErr)
		}
		if err == nil && log == nil {
			t.Errorf("New(%q) returned nil logger", tc.level)
		}
	}
}
