package infra

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the copies in ec2/user-data.sh and template.yaml from infra/ec2/")

const (
	userDataPath = "ec2/user-data.sh"
	unitPath     = "ec2/walbridge-capture.service"
	wrapperPath  = "ec2/capture-start.sh"

	// captureDrain is how long capture takes at most to drain on SIGTERM.
	captureDrain = 30 * time.Second
	// userDataLimit is EC2's limit on user data before base64 encoding.
	userDataLimit = 16 << 10
)

// embedded are the files user-data.sh carries as quoted here-documents.
var embedded = []struct{ file, delim string }{
	{wrapperPath, "CAPTURE_START"},
	{unitPath, "UNIT"},
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// heredoc finds the body of the quoted here-document <<'DELIM' in script,
// returning the offsets of the body.
func heredoc(script, delim string) (start, end int, err error) {
	open := "<<'" + delim + "'\n"
	i := strings.Index(script, open)
	if i < 0 {
		return 0, 0, fmt.Errorf("no quoted here-document <<'%s'", delim)
	}
	start = i + len(open)
	j := strings.Index(script[start:], "\n"+delim+"\n")
	if j < 0 {
		if strings.HasPrefix(script[start:], delim+"\n") {
			return start, start, nil
		}
		return 0, 0, fmt.Errorf("here-document %s is not terminated", delim)
	}
	return start, start + j + 1, nil
}

// userDataSub returns the template's Fn::Sub string and variable map for
// the launch template's user data.
func userDataSub(t testing.TB, tpl *template) (string, map[string]any) {
	t.Helper()
	ud := dig(tpl.Resources["CaptureLaunchTemplate"], "Properties", "LaunchTemplateData", "UserData")
	sub := dig(ud, "Fn::Base64", "Fn::Sub")
	parts, ok := sub.([]any)
	if !ok || len(parts) != 2 {
		t.Fatalf("UserData is not Fn::Base64 of Fn::Sub [string, map]: %#v", ud)
	}
	s, ok := parts[0].(string)
	if !ok {
		t.Fatalf("UserData Fn::Sub string is %T", parts[0])
	}
	return s, asMap(parts[1])
}

var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func TestUserDataMatchesFiles(t *testing.T) {
	if *update {
		updateCopies(t)
	}
	script := readFile(t, userDataPath)
	for _, e := range embedded {
		start, end, err := heredoc(script, e.delim)
		if err != nil {
			t.Fatalf("%s: %v", userDataPath, err)
		}
		if got, want := script[start:end], readFile(t, e.file); got != want {
			t.Errorf("%s's copy of %s differs from the file; run go test ./infra -run TestUserDataMatchesFiles -update", userDataPath, e.file)
		}
		if strings.Contains(readFile(t, e.file), "${") {
			t.Errorf("%s contains ${: CloudFormation's Fn::Sub would take it for a variable", e.file)
		}
	}

	tpl := loadTemplate(t, templatePath)
	s, vars := userDataSub(t, tpl)
	if s != script {
		t.Errorf("template.yaml's user data differs from %s; run go test ./infra -run TestUserDataMatchesFiles -update", userDataPath)
	}
	// Every ${Name} must be a variable of the Fn::Sub map (and a valid shell
	// name, so that the script reads the same placeholder from the
	// environment when run by hand), and every variable must be used.
	used := map[string]bool{}
	for _, m := range subVar.FindAllStringSubmatch(script, -1) {
		name := m[1]
		if strings.HasPrefix(name, "!") {
			t.Errorf("%s uses the Fn::Sub escape %s, which bash reads differently", userDataPath, m[0])
			continue
		}
		if !shellName.MatchString(name) {
			t.Errorf("%s: %s is not a plain shell variable", userDataPath, m[0])
		}
		if _, ok := vars[name]; !ok {
			t.Errorf("%s: ${%s} is not in the template's Fn::Sub variable map", userDataPath, name)
		}
		used[name] = true
	}
	for name := range vars {
		if !used[name] {
			t.Errorf("Fn::Sub variable %s is not used by %s", name, userDataPath)
		}
	}
	r := newRenderer(t, tpl, nil)
	rendered := scalarString(r.mustRender(t, dig(tpl.Resources["CaptureLaunchTemplate"], "Properties", "LaunchTemplateData", "UserData")))
	if len(rendered) >= userDataLimit {
		t.Errorf("user data is %d bytes; EC2 allows %d", len(rendered), userDataLimit)
	}
	if strings.Contains(rendered, "${") {
		t.Errorf("rendered user data still contains ${")
	}
}

// updateCopies rewrites the here-documents in user-data.sh from the files
// they copy, then the template's user-data block from user-data.sh.
func updateCopies(t *testing.T) {
	script := readFile(t, userDataPath)
	for _, e := range embedded {
		start, end, err := heredoc(script, e.delim)
		if err != nil {
			t.Fatal(err)
		}
		script = script[:start] + readFile(t, e.file) + script[end:]
	}
	if err := os.WriteFile(userDataPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	lines := strings.SplitAfter(readFile(t, templatePath), "\n")
	marker := -1
	for i, l := range lines {
		if strings.Contains(l, "# Generated from infra/ec2/user-data.sh") {
			marker = i
		}
	}
	if marker < 0 {
		t.Fatal("template.yaml: no '# Generated from infra/ec2/user-data.sh' marker")
	}
	open := -1
	for i := marker + 1; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "- |" {
			open = i
			break
		}
	}
	if open < 0 {
		t.Fatal("template.yaml: no '- |' block after the marker")
	}
	indent := len(lines[open]) - len(strings.TrimLeft(lines[open], " "))
	end := open + 1
	for ; end < len(lines); end++ {
		l := lines[end]
		if strings.TrimSpace(l) != "" && len(l)-len(strings.TrimLeft(l, " ")) <= indent {
			break
		}
	}
	var block []string
	pad := strings.Repeat(" ", indent+2)
	for _, l := range strings.SplitAfter(script, "\n") {
		switch {
		case l == "":
		case strings.TrimSpace(l) == "":
			block = append(block, "\n")
		default:
			block = append(block, pad+l)
		}
	}
	out := slices.Concat(lines[:open+1], block, lines[end:])
	if err := os.WriteFile(templatePath, []byte(strings.Join(out, "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(text string) (unitFile, error) {
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		case strings.HasSuffix(line, "\\"):
			return nil, fmt.Errorf("line %d: continuation lines are not supported here", n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is not key=value in a section", n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// get returns the last value of a key, as systemd uses for single-valued
// settings.
func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

var spanUnits = map[string]time.Duration{
	"": time.Second, "us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
	"sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour,
}

var spanPart = regexp.MustCompile(`^([0-9]+)([a-z]*)$`)

// parseTimespan parses systemd time spans such as "60", "60s", "1min 30s".
func parseTimespan(s string) (time.Duration, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, errors.New("empty time span")
	}
	var d time.Duration
	for _, f := range fields {
		m := spanPart.FindStringSubmatch(f)
		if m == nil {
			return 0, fmt.Errorf("bad time span %q", s)
		}
		unit, ok := spanUnits[m[2]]
		if !ok {
			return 0, fmt.Errorf("bad time span unit in %q", s)
		}
		n, _ := strconv.Atoi(m[1])
		d += time.Duration(n) * unit
	}
	return d, nil
}

func TestParseTimespan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60": time.Minute, "60s": time.Minute, "1min 30s": 90 * time.Second, "2m": 2 * time.Minute, "500ms": 500 * time.Millisecond,
	} {
		if got, err := parseTimespan(in); err != nil || got != want {
			t.Errorf("parseTimespan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "infinity", "5 parsecs"} {
		if _, err := parseTimespan(in); err == nil {
			t.Errorf("parseTimespan(%q) succeeded", in)
		}
	}
}

// secretLike matches names and values that suggest a credential.
var secretLike = regexp.MustCompile(`(?i)pass(word)?|secret_?value|token|credential|private_?key|postgres(ql)?://[^ ]*@`)

func TestCaptureUnitFile(t *testing.T) {
	text := readFile(t, unitPath)
	u, err := parseUnit(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("no [%s] section", s)
		}
	}
	want := []struct{ section, key, value string }{
		{"Service", "Restart", "always"},
		{"Service", "ExecStart", "/opt/walbridge/bin/capture-start"},
		{"Service", "ExecStartPre", "/opt/walbridge/bin/capture-start setup"},
		{"Service", "EnvironmentFile", "/etc/walbridge/capture.env"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Unit", "StartLimitIntervalSec", "0"},
		{"Unit", "After", "network-online.target"},
		{"Unit", "Wants", "network-online.target"},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, w := range want {
		if got := u.get(w.section, w.key); got != w.value {
			t.Errorf("[%s] %s = %q, want %q", w.section, w.key, got, w.value)
		}
	}
	if n := len(u["Service"]["ExecStart"]); n != 1 {
		t.Errorf("%d ExecStart lines, want 1", n)
	}
	stop, err := parseTimespan(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Errorf("TimeoutStopSec: %v", err)
	} else if stop <= captureDrain {
		t.Errorf("TimeoutStopSec = %v; must exceed capture's %v drain or systemd kills it mid-drain", stop, captureDrain)
	}
	// No credentials in the unit: only non-secret settings in Environment=,
	// and nothing that looks like a password or a URL with userinfo.
	for _, env := range u["Service"]["Environment"] {
		k, _, _ := strings.Cut(env, "=")
		if k != "HOME" {
			t.Errorf("Environment=%s: configuration belongs in the EnvironmentFile", env)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if secretLike.MatchString(line) {
			t.Errorf("unit line %q looks like it carries a credential", line)
		}
	}
}

func TestCaptureUnitSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: run scripts/install-deps (Debian package systemd)")
	}
	const systemUnits = "/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(systemUnits, "multi-user.target")); err != nil {
		t.Fatalf("no system units in %s to verify against: install the Debian package systemd", systemUnits)
	}
	u, err := parseUnit(readFile(t, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	// A scratch root with the unit, the paths it names, and the host's
	// system units (for the targets it orders against).
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "etc/systemd/system/walbridge-capture.service"), readFile(t, unitPath), 0o644)
	mustWrite(t, filepath.Join(root, u.get("Service", "ExecStart")), "#!/bin/sh\n", 0o755)
	if reload, _, _ := strings.Cut(u.get("Service", "ExecReload"), " "); reload != "" {
		mustWrite(t, filepath.Join(root, reload), "#!/bin/sh\n", 0o755) // /bin/kill, on the instance
	}
	mustWrite(t, filepath.Join(root, u.get("Service", "EnvironmentFile")), "", 0o600)
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", systemUnits, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying system units: %v\n%s", err, out)
	}
	cmd := exec.Command(sa, "verify", "--root="+root, "--man=no", "--generators=no", "walbridge-capture.service")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings (unknown keys, bad values) do not change the exit status.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "walbridge-capture.service") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}

func mustWrite(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // despite the umask
		t.Fatal(err)
	}
}

const (
	fakeBinary = "#!/bin/sh\necho fake capture\n"
	fakePEM    = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	// secretMarker is the password the fake Secrets Manager returns; it must
	// never reach a file or an argument list.
	secretMarker = "pw-9f3c1e-never-on-disk"
	// fakeLayerURL is the download URL the fake aws gives for a layer.
	fakeLayerURL = "https://awslambda-eu-west-1-layers.s3.eu-west-1.amazonaws.com/snapshots/123456789012/capture.zip?X-Amz-Signature=fake"
)

// fakeTools writes stand-ins for aws, curl, systemctl and sleep into a new
// directory. Each appends its argv (tab-separated) to $FAKE_LOG. aws s3 cp
// and curl -o write a fake binary or PEM bundle to the destination;
// FAKE_FAIL names a URL whose download fails.
func fakeTools(t *testing.T) string {
	dir := t.TempDir()
	logLine := `printf '%s' "$(basename "$0")" >>"$FAKE_LOG"; for a in "$@"; do printf '\t%s' "$a" >>"$FAKE_LOG"; done; echo >>"$FAKE_LOG"` + "\n"
	content := `put() { # put URL DEST
	if [ -n "$FAKE_FAIL" ] && [ "$1" = "$FAKE_FAIL" ]; then echo "fake: $1 unavailable" >&2; exit 1; fi
	case "$1" in
	*.zip\?*) printf -- '` + strings.ReplaceAll(fakeBinary, "\n", `\n`) + `' >"$2.bin" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").write(sys.argv[2], "capture")' "$2" "$2.bin" && rm -f "$2.bin" ;;
	*.pem) printf -- '` + strings.ReplaceAll(fakePEM, "\n", `\n`) + `' >"$2" ;;
	*) printf -- '` + strings.ReplaceAll(fakeBinary, "\n", `\n`) + `' >"$2" ;;
	esac
}
`
	scripts := map[string]string{
		"aws": logLine + content + `
case "$1 $2" in
"s3 cp")
	shift 2
	while [ "$1" != "${1#--}" ]; do
		case "$1" in --region) shift 2 ;; *) shift ;; esac
	done
	put "$1" "$2"
	;;
"lambda get-layer-version-by-arn")
	printf '%s\n' '` + fakeLayerURL + `'
	;;
"secretsmanager get-secret-value")
	if [ -n "$FAKE_SECRET" ]; then printf '%s\n' "$FAKE_SECRET"; else exit 254; fi
	;;
*) echo "fake aws: unexpected $*" >&2; exit 2 ;;
esac
`,
		"curl": logLine + content + `
dest= url=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) dest=$2; shift 2 ;;
	--proto) shift 2 ;;
	-*) shift ;;
	*) url=$1; shift ;;
	esac
done
put "$url" "$dest"
`,
		"systemctl": logLine,
		"sleep":     logLine,
	}
	for name, body := range scripts {
		mustWrite(t, filepath.Join(dir, name), "#!/bin/bash\nset -eu\n"+body, 0o755)
	}
	return dir
}

// calls reads $FAKE_LOG as one argv per line.
func calls(t *testing.T, log string) [][]string {
	b, err := os.ReadFile(log)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" {
			out = append(out, strings.Split(l, "\t"))
		}
	}
	return out
}

func callsTo(all [][]string, tool string) [][]string {
	var out [][]string
	for _, c := range all {
		if c[0] == tool {
			out = append(out, c[1:])
		}
	}
	return out
}

// userDataEnv renders the template's Fn::Sub variables under params, as
// CloudFormation would fill them in, giving resources realistic values.
func userDataEnv(t *testing.T, params map[string]string) map[string]string {
	tpl := loadTemplate(t, templatePath)
	_, vars := userDataSub(t, tpl)
	r := newRenderer(t, tpl, params)
	env := map[string]string{}
	for k, v := range vars {
		s := scalarString(r.mustRender(t, v))
		env[k] = strings.ReplaceAll(s, refPlaceholder("Stream"), "walbridge-test-Stream-AbC123dEf456")
	}
	return env
}

func parseEnvFile(text string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || !shellName.MatchString(k) {
			return nil, fmt.Errorf("bad line %q", l)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("duplicate %s", k)
		}
		out[k] = v
	}
	return out, nil
}

func requireBash(t *testing.T) string {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is not installed")
	}
	return bash
}

func TestUserDataScript(t *testing.T) {
	bash := requireBash(t)
	unit, err := parseUnit(readFile(t, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		params  map[string]string
		env     map[string]string // on top of the rendered placeholders; "" unsets
		wantErr bool
		caVia   string // tool expected to fetch the CA bundle
	}{
		{name: "CA bundle from the RDS trust store", caVia: "curl"},
		{name: "CA bundle from the artifact bucket", params: map[string]string{"ArtifactBucket": "walbridge-artifacts", "RdsCaBundleKey": "walbridge/rds-ca.pem"}, caVia: "aws"},
		{name: "keyless tables get REPLICA IDENTITY FULL", params: map[string]string{"KeylessTables": "full"}, caVia: "curl"},
		{name: "version 2 records", params: map[string]string{"RecordFormat": "v2"}, caVia: "curl"},
		{name: "no claim check", params: map[string]string{"ClaimCheck": "disabled"}, caVia: "curl"},
		{name: "binary from the artifact bucket", params: map[string]string{"ArtifactBucket": "walbridge-artifacts", "ArtifactKey": "walbridge/capture-linux-arm64"}, caVia: "curl"},
		{name: "column policy and hash key", params: map[string]string{"ArtifactBucket": "walbridge-artifacts", "PolicyKey": "walbridge/policy.yaml",
			"HashKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:walbridge-hash-key"}, caVia: "curl"},
		{name: "non-numeric port", env: map[string]string{"DbPort": "54x2"}, wantErr: true},
		{name: "placeholder not filled in", env: map[string]string{"DbName": ""}, wantErr: true},
		{name: "binary download fails", env: map[string]string{"FAKE_FAIL": fakeLayerURL}, wantErr: true},
		{name: "binary download from the bucket fails", params: map[string]string{"ArtifactBucket": "walbridge-artifacts", "ArtifactKey": "walbridge/capture-linux-arm64"},
			env: map[string]string{"FAKE_FAIL": "s3://walbridge-artifacts/walbridge/capture-linux-arm64"}, wantErr: true},
		{name: "CA bundle is not PEM", env: map[string]string{"RdsCaBundleUrl": "https://example.com/not-a-bundle.txt"}, wantErr: true},
		{name: "plain http refused", env: map[string]string{"RdsCaBundleUrl": "http://example.com/bundle.pem"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			log := filepath.Join(t.TempDir(), "calls")
			vars := userDataEnv(t, tt.params)
			env := []string{
				"PATH=" + fakeTools(t) + string(os.PathListSeparator) + os.Getenv("PATH"),
				"WALBRIDGE_ROOT=" + root,
				"FAKE_LOG=" + log,
				"FAKE_SECRET={\"username\":\"walbridge\",\"password\":\"" + secretMarker + "\"}",
				"FAKE_FAIL=",
			}
			for k, v := range tt.env {
				vars[k] = v
			}
			for k, v := range vars {
				if v != "" {
					env = append(env, k+"="+v)
				}
			}
			cmd := exec.Command(bash, userDataPath)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			all := calls(t, log)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("user-data.sh succeeded, want failure\n%s", out)
				}
				if s := callsTo(all, "systemctl"); len(s) > 0 {
					t.Errorf("failed user data still ran systemctl %v", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("user-data.sh: %v\n%s", err, out)
			}

			files := []struct {
				path    string
				mode    os.FileMode
				content string // "" = don't compare
			}{
				{"/opt/walbridge/bin/capture", 0o755, fakeBinary},
				{unit.get("Service", "ExecStart"), 0o755, readFile(t, wrapperPath)},
				{"/etc/systemd/system/walbridge-capture.service", 0o644, readFile(t, unitPath)},
				{unit.get("Service", "EnvironmentFile"), 0o600, ""},
				{"/etc/walbridge/rds-ca.pem", 0o644, fakePEM},
			}
			for _, f := range files {
				p := filepath.Join(root, f.path)
				st, err := os.Stat(p)
				if err != nil {
					t.Errorf("%s: %v", f.path, err)
					continue
				}
				if st.Mode().Perm() != f.mode {
					t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
				}
				if f.content != "" && readFile(t, p) != f.content {
					t.Errorf("%s: unexpected content", f.path)
				}
			}

			envFile, err := parseEnvFile(readFile(t, filepath.Join(root, unit.get("Service", "EnvironmentFile"))))
			if err != nil {
				t.Fatalf("capture.env: %v", err)
			}
			wantEnv := map[string]string{
				"WALBRIDGE_STREAM":        "walbridge-test-Stream-AbC123dEf456",
				"WALBRIDGE_SLOT":          "walbridge",
				"WALBRIDGE_PUBLICATION":   "walbridge",
				"WALBRIDGE_METRICS_ADDR":  "127.0.0.1:9187",
				"WALBRIDGE_CLOUDWATCH":    "true", // the capture alarms read these series
				"WALBRIDGE_DB_SECRET_ARN": requiredParamValues["DbSecretArn"],
				// Empty without a PolicyKey or HashKeySecretArn: no policy.
				"WALBRIDGE_POLICY":          "",
				"WALBRIDGE_HASH_KEY_SECRET": tt.params["HashKeySecretArn"],
				"WALBRIDGE_KEYLESS":         map[string]string{"": "", "refuse": "", "full": "full", "exclude": "exclude"}[tt.params["KeylessTables"]],
				"WALBRIDGE_RECORD_FORMAT":   map[string]string{"": "v1", "v1": "v1", "v2": "v2"}[tt.params["RecordFormat"]],
				// The bucket's name, unless the claim check is disabled.
				"WALBRIDGE_CLAIM_CHECK_BUCKET": map[string]string{"": refPlaceholder("ClaimCheckBucket"), "enabled": refPlaceholder("ClaimCheckBucket"), "disabled": ""}[tt.params["ClaimCheck"]],
				"AWS_REGION":                   "eu-west-1",
				// No credentials: capture-start adds PGUSER and PGPASSWORD.
				"DATABASE_URL": "postgres://" + requiredParamValues["DbHost"] + ":5432/" + requiredParamValues["DbName"] +
					"?sslmode=verify-full&sslrootcert=/etc/walbridge/rds-ca.pem",
			}
			if tt.params["PolicyKey"] != "" {
				wantEnv["WALBRIDGE_POLICY"] = "/etc/walbridge/policy.yaml"
				if _, err := os.Stat(filepath.Join(root, "/etc/walbridge/policy.yaml")); err != nil {
					t.Errorf("policy not installed: %v", err)
				}
				if !slices.ContainsFunc(callsTo(all, "aws"), func(c []string) bool {
					return slices.Contains(c, "s3://walbridge-artifacts/walbridge/policy.yaml")
				}) {
					t.Errorf("the policy was not fetched from the artifact bucket: %v", callsTo(all, "aws"))
				}
			}
			if !reflect.DeepEqual(envFile, wantEnv) {
				t.Errorf("capture.env =\n%v\nwant\n%v", envFile, wantEnv)
			}
			if u, err := url.Parse(envFile["DATABASE_URL"]); err != nil {
				t.Errorf("DATABASE_URL: %v", err)
			} else if _, err := os.Stat(filepath.Join(root, u.Query().Get("sslrootcert"))); err != nil {
				t.Errorf("DATABASE_URL's sslrootcert: %v", err)
			}

			// No secret anywhere on disk, and the user data never asked for it.
			err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if strings.HasSuffix(p, ".tmp") || strings.HasSuffix(p, ".download") {
					t.Errorf("left behind %s", p)
				}
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secretMarker)) {
					t.Errorf("%s contains the database password", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range callsTo(all, "aws") {
				if c[0] == "secretsmanager" {
					t.Errorf("user data fetched the secret (aws %v); only capture-start may", c)
				}
			}

			if got, want := callsTo(all, "systemctl"), [][]string{{"daemon-reload"}, {"enable", "--now", "walbridge-capture.service"}}; !reflect.DeepEqual(got, want) {
				t.Errorf("systemctl calls = %v, want %v", got, want)
			}
			fetched := map[string]string{} // URL -> tool
			for _, c := range callsTo(all, "aws") {
				if len(c) >= 2 && c[0] == "s3" && c[1] == "cp" {
					fetched[c[len(c)-2]] = "aws"
				}
			}
			for _, c := range callsTo(all, "curl") {
				fetched[c[len(c)-1]] = "curl"
				if !slices.Contains(c, "=https") {
					t.Errorf("curl %v does not insist on https", c)
				}
			}
			if tt.params["ArtifactKey"] != "" {
				if fetched[vars["ArtifactUrl"]] != "aws" {
					t.Errorf("capture binary %s not fetched with aws s3 cp (fetched %v)", vars["ArtifactUrl"], fetched)
				}
			} else {
				// The stack's layer: its download URL, then the zip.
				want := []string{"lambda", "get-layer-version-by-arn", "--region", "eu-west-1", "--arn", refPlaceholder("CaptureBinary"),
					"--query", "Content.Location", "--output", "text"}
				if vars["ArtifactUrl"] != "layer:"+refPlaceholder("CaptureBinary") || !slices.ContainsFunc(callsTo(all, "aws"), func(c []string) bool { return slices.Equal(c, want) }) ||
					fetched[fakeLayerURL] != "curl" {
					t.Errorf("capture binary %s not fetched from the layer (aws calls %v, fetched %v)", vars["ArtifactUrl"], callsTo(all, "aws"), fetched)
				}
			}
			if fetched[vars["RdsCaBundleUrl"]] != tt.caVia {
				t.Errorf("CA bundle %s fetched by %q, want %s (fetched %v)", vars["RdsCaBundleUrl"], fetched[vars["RdsCaBundleUrl"]], tt.caVia, fetched)
			}
		})
	}
}

func TestCaptureStartWrapper(t *testing.T) {
	bash := requireBash(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is not installed: run scripts/install-deps")
	}
	goodSecret := `{"username":"walbridge","password":"` + secretMarker + `","engine":"postgres"}`
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  bool
		wantCode int  // exit status when wantErr, 0 for any
		hashKey  bool // WALBRIDGE_HASH_KEY_SECRET is set: a second secret is read
	}{
		{name: "starts capture with the credentials"},
		{name: "runs another command", args: []string{"teardown", "--yes"}},
		{name: "sslmode require is refused", env: map[string]string{"DATABASE_URL": "postgres://db:5432/orders?sslmode=require&sslrootcert=CA"}, wantErr: true, wantCode: 78},
		{name: "no sslmode is refused", env: map[string]string{"DATABASE_URL": "postgres://db:5432/orders"}, wantErr: true, wantCode: 78},
		{name: "credentials in the URL are refused", env: map[string]string{"DATABASE_URL": "postgres://u:p@db:5432/orders?sslmode=verify-full&sslrootcert=CA"}, wantErr: true, wantCode: 78},
		{name: "missing CA bundle is refused", env: map[string]string{"DATABASE_URL": "postgres://db:5432/orders?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"}, wantErr: true, wantCode: 78},
		{name: "no CA bundle named is refused", env: map[string]string{"DATABASE_URL": "postgres://db:5432/orders?sslmode=verify-full"}, wantErr: true, wantCode: 78},
		{name: "secret without password", env: map[string]string{"FAKE_SECRET": `{"username":"walbridge"}`}, wantErr: true},
		{name: "secret not readable", env: map[string]string{"FAKE_SECRET": ""}, wantErr: true},
		{name: "secret ARN not configured", env: map[string]string{"WALBRIDGE_DB_SECRET_ARN": ""}, wantErr: true, wantCode: 78},
		{name: "hash key from its secret", env: map[string]string{"WALBRIDGE_HASH_KEY_SECRET": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:walbridge-hash-key"}, hashKey: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "opt/walbridge/bin")
			mustWrite(t, filepath.Join(bin, "capture-start"), readFile(t, wrapperPath), 0o755)
			// The fake capture records its arguments and environment.
			mustWrite(t, filepath.Join(bin, "capture"), "#!/bin/sh\nprintf '%s\\n' \"$@\" >\"$CAPTURE_OUT.args\"\nenv >\"$CAPTURE_OUT.env\"\n", 0o755)
			ca := filepath.Join(dir, "rds-ca.pem")
			mustWrite(t, ca, fakePEM, 0o644)
			log := filepath.Join(dir, "calls")
			out := filepath.Join(dir, "capture")
			dbURL := "postgres://db.example:5432/orders?sslmode=verify-full&sslrootcert=" + ca
			vars := map[string]string{
				"PATH":                    fakeTools(t) + string(os.PathListSeparator) + os.Getenv("PATH"),
				"FAKE_LOG":                log,
				"FAKE_SECRET":             goodSecret,
				"CAPTURE_OUT":             out,
				"WALBRIDGE_DB_SECRET_ARN": requiredParamValues["DbSecretArn"],
				"AWS_REGION":              "eu-west-1",
				"DATABASE_URL":            dbURL,
			}
			for k, v := range tt.env {
				vars[k] = strings.ReplaceAll(v, "sslrootcert=CA", "sslrootcert="+ca)
			}
			cmd := exec.Command(bash, append([]string{filepath.Join(bin, "capture-start")}, tt.args...)...)
			for k, v := range vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			output, err := cmd.CombinedOutput()
			if bytes.Contains(output, []byte(secretMarker)) {
				t.Errorf("capture-start printed the password")
			}
			_, statErr := os.Stat(out + ".args")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("capture-start succeeded, want failure\n%s", output)
				}
				var exitErr *exec.ExitError
				if tt.wantCode != 0 && (!errors.As(err, &exitErr) || exitErr.ExitCode() != tt.wantCode) {
					t.Errorf("capture-start: %v, want exit status %d\n%s", err, tt.wantCode, output)
				}
				if statErr == nil {
					t.Errorf("capture ran despite the failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("capture-start: %v\n%s", err, output)
			}
			wantArgs := "run\n"
			if tt.args != nil {
				wantArgs = strings.Join(tt.args, "\n") + "\n"
			}
			if got := readFile(t, out+".args"); got != wantArgs {
				t.Errorf("capture arguments = %q, want %q", got, wantArgs)
			}
			gotEnv := map[string]string{}
			for _, l := range strings.Split(readFile(t, out+".env"), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					gotEnv[k] = v
				}
			}
			for k, v := range map[string]string{"PGUSER": "walbridge", "PGPASSWORD": secretMarker, "DATABASE_URL": dbURL} {
				if gotEnv[k] != v {
					t.Errorf("capture's %s = %q, want %q", k, gotEnv[k], v)
				}
			}
			aws := callsTo(calls(t, log), "aws")
			if tt.hashKey {
				// The fake answers every secret with the same string.
				if gotEnv["WALBRIDGE_HASH_KEY"] != goodSecret || len(aws) != 2 || !slices.Contains(aws[1], tt.env["WALBRIDGE_HASH_KEY_SECRET"]) {
					t.Errorf("hash key %q from aws calls %v", gotEnv["WALBRIDGE_HASH_KEY"], aws)
				}
				aws = aws[:1]
			} else if _, set := gotEnv["WALBRIDGE_HASH_KEY"]; set {
				t.Errorf("WALBRIDGE_HASH_KEY set without WALBRIDGE_HASH_KEY_SECRET")
			}
			if len(aws) != 1 || !slices.Contains(aws[0], requiredParamValues["DbSecretArn"]) || !slices.Contains(aws[0], "eu-west-1") {
				t.Errorf("aws calls = %v, want one get-secret-value for the secret in eu-west-1", aws)
			}
			for _, c := range calls(t, log) {
				if slices.Contains(c, secretMarker) {
					t.Errorf("the password was passed as an argument: %v", c)
				}
			}
		})
	}
}

// TestStartSequence runs the unit's start commands in systemd's order
// (every ExecStartPre, each of which must succeed, then ExecStart) against a
// fake capture: capture setup runs before capture run, with the same
// credentials path; when setup refuses, run never starts.
func TestStartSequence(t *testing.T) {
	bash := requireBash(t)
	unit, err := parseUnit(readFile(t, unitPath))
	if err != nil {
		t.Fatal(err)
	}
	steps := append(slices.Clone(unit["Service"]["ExecStartPre"]), unit["Service"]["ExecStart"]...)
	if len(steps) < 2 {
		t.Fatalf("start commands %v: want capture setup before capture run", steps)
	}
	for _, refuse := range []bool{false, true} {
		dir := t.TempDir()
		bin := filepath.Join(dir, "opt/walbridge/bin")
		mustWrite(t, filepath.Join(bin, "capture-start"), readFile(t, wrapperPath), 0o755)
		// The fake capture logs each command; setup fails when asked to.
		mustWrite(t, filepath.Join(bin, "capture"), "#!/bin/sh\necho \"$1 $PGUSER\" >>\"$CAPTURE_OUT\"\n"+
			"if [ \"$1\" = setup ] && [ -n \"$FAKE_REFUSE\" ]; then echo 'capture setup: tables without a primary key' >&2; exit 1; fi\n", 0o755)
		ca := filepath.Join(dir, "rds-ca.pem")
		mustWrite(t, ca, fakePEM, 0o644)
		out := filepath.Join(dir, "capture.log")
		env := []string{
			"PATH=" + fakeTools(t) + string(os.PathListSeparator) + os.Getenv("PATH"),
			"FAKE_LOG=" + filepath.Join(dir, "calls"), "FAKE_SECRET={\"username\":\"walbridge\",\"password\":\"" + secretMarker + "\"}",
			"CAPTURE_OUT=" + out, "WALBRIDGE_DB_SECRET_ARN=" + requiredParamValues["DbSecretArn"], "AWS_REGION=eu-west-1",
			"DATABASE_URL=postgres://db.example:5432/orders?sslmode=verify-full&sslrootcert=" + ca,
		}
		if refuse {
			env = append(env, "FAKE_REFUSE=1")
		}
		var failed error
		for _, step := range steps {
			args := strings.Fields(strings.ReplaceAll(step, "/opt/walbridge/bin", bin))
			cmd := exec.Command(bash, args...)
			cmd.Env = env
			if b, err := cmd.CombinedOutput(); err != nil {
				failed = fmt.Errorf("%s: %v: %s", step, err, b)
				break
			}
		}
		got := strings.Split(strings.TrimSpace(readFile(t, out)), "\n")
		switch {
		case !refuse && (failed != nil || !slices.Equal(got, []string{"setup walbridge", "run walbridge"})):
			t.Errorf("start: %v; capture ran %q, want setup then run, both with the secret's user", failed, got)
		case refuse && (failed == nil || !slices.Equal(got, []string{"setup walbridge"}) || !strings.Contains(failed.Error(), "primary key")):
			t.Errorf("start with setup refusing: %v; capture ran %q, want setup only, its reason reported", failed, got)
		}
	}
}
