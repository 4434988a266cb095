// Package repo finds walbridge's checkout from inside it, for tests and
// development tools that need its files (scripts, templates, testdata of
// other packages).
package repo

import (
	"fmt"
	"os"
	"path/filepath"
)

// Root is the directory holding go.mod, found by walking up from the
// working directory (go test runs in the package directory).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
