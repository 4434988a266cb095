package repo

import (
	"os/exec"
	"strings"
	"testing"
)

// standIn reports an in-test endpoint package: shared/<service>test.
func standIn(path string) bool {
	rest, ok := strings.CutPrefix(path, "github.com/walbridge/walbridge/shared/")
	return ok && !strings.Contains(rest, "/") && strings.HasSuffix(rest, "test")
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestBinariesHoldNoStandIns: what ships (capture, fanout) must not link the
// in-test endpoints.
func TestBinariesHoldNoStandIns(t *testing.T) {
	deps := goList(t, "-deps", "./capture", "./fanout")
	if len(deps) < 50 {
		t.Fatalf("go list -deps gave %d packages; is the module there?", len(deps))
	}
	for _, d := range deps {
		if standIn(d) {
			t.Errorf("a binary depends on the stand-in %s", d)
		}
	}
}

// TestStandInsOnlyInTests: outside _test.go files, only stand-ins import
// stand-ins (eventbridgetest builds on awstest); everything else reaches them
// from tests alone.
func TestStandInsOnlyInTests(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}:{{join .Imports ","}}`, "./...")
	seen := 0
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			if !standIn(imp) {
				continue
			}
			seen++
			if !standIn(pkg) {
				t.Errorf("%s imports the stand-in %s outside its tests", pkg, imp)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no stand-in imports another: the check found nothing to check")
	}
}
