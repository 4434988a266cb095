package infra

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// TestBuildTargets: every resource the template has sam build make
// (Metadata BuildMethod makefile) has its build-<LogicalId> target in
// infra/Makefile, and the targets build both artifacts from this checkout,
// as sam build runs them (ARTIFACTS_DIR set, in the source folder). They
// build for the host's architecture here, so that the build cache of the
// rest of the suite serves them (and without -trimpath, for the same
// reason); the template's arm64 is the same command with the Makefile's
// defaults.
func TestBuildTargets(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	makefile := readFile(t, "Makefile")
	want := map[string]string{"FanoutFunction": "bootstrap", "CaptureBinary": "capture"}
	found := 0
	for name, res := range tpl.Resources {
		if asMap(res["Metadata"])["BuildMethod"] != "makefile" {
			continue
		}
		found++
		if !regexp.MustCompile(`(?m)^build-` + name + `:`).MatchString(makefile) {
			t.Errorf("infra/Makefile has no build-%s target", name)
		}
		if _, ok := want[name]; !ok {
			t.Errorf("%s is built by make, but this test does not know its artifact", name)
		}
	}
	if found != len(want) {
		t.Errorf("%d resources built by make, want %d (%v)", found, len(want), want)
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed (scripts/install-deps needs it)")
	}
	out := t.TempDir()
	for name, artifact := range want {
		dir := filepath.Join(out, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("make", "build-"+name, "ARTIFACTS_DIR="+dir, "GOARCH="+runtime.GOARCH, "GOBUILDFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make build-%s: %v\n%s", name, err, b)
		}
		f, err := elf.Open(filepath.Join(dir, artifact))
		if err != nil {
			t.Fatalf("build-%s left no %s: %v", name, artifact, err)
		}
		if f.FileHeader.OSABI != elf.ELFOSABI_NONE && f.FileHeader.OSABI != elf.ELFOSABI_LINUX {
			t.Errorf("%s is not a Linux executable", artifact)
		}
		f.Close()
	}
	// Without ARTIFACTS_DIR (not under sam build) the target says so.
	if b, err := exec.Command("make", "build-FanoutFunction").CombinedOutput(); err == nil || !regexp.MustCompile(`ARTIFACTS_DIR`).Match(b) {
		t.Errorf("make without ARTIFACTS_DIR: %v\n%s", err, b)
	}
}
