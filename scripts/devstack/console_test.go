package main

// TestConsoleInABrowser drives scripts/dev's console in a real browser:
// headless Chromium (Debian's chromium, which scripts/install-deps
// installs), over the DevTools protocol with chromedp, against
// scripts/dev --demo on real parts.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/syncbuf"
)

// browser starts headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (scripts/install-deps installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// until evaluates a JavaScript expression until it is true, within limit.
func until(t *testing.T, ctx context.Context, what, expr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("%s: evaluate %s: %v", what, expr, err)
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	t.Fatalf("%s: not within %v (%s)\npage:\n%s", what, limit, expr, html)
}

// typePattern replaces the playground's pattern by typing it.
func typePattern(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("pattern").value = ""`)); err != nil {
		t.Fatalf("clear the pattern: %v", err)
	}
	typeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(typeCtx, chromedp.SendKeys(chromedp.ID("pattern"), text)); err != nil {
		t.Fatalf("type the pattern: %v", err)
	}
}

func TestConsoleInABrowser(t *testing.T) {
	dir, ports, env := devEnv(t)
	ctx := browser(t)
	cmd := exec.Command("scripts/dev", "--demo")
	cmd.Dir = repoRoot(t)
	cmd.Env = env
	url := "http://127.0.0.1:" + strconv.Itoa(ports[3]) + "/"
	runDemo(t, cmd, dir, func(out *syncbuf.Buffer) {
		if !strings.Contains(out.String(), "[dev] console at "+url) {
			t.Errorf("scripts/dev did not announce the console at %s", url)
		}
		started := time.Now()
		navCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(navCtx, chromedp.Navigate(url)); err != nil {
			t.Fatalf("open the console: %v", err)
		}
		// The demo's three events, as compact rows.
		until(t, ctx, "the demo's three events", `document.querySelectorAll('#events li[data-table="public.users"]').length === 3`, 10*time.Second)
		t.Logf("the three events were on the page %v after it opened", time.Since(started).Round(time.Millisecond))
		ops, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#events li')].map(li => li.dataset.op).reverse().join(" ")`))
		if err != nil {
			t.Fatal(err)
		}
		if ops != "insert update delete" {
			t.Errorf("rows' operations %q, want insert update delete", ops)
		}

		// A change to another table arrives live; the table filter narrows
		// the list back to users.
		conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app", ports[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, q := range []string{`CREATE TABLE notes (id serial PRIMARY KEY, body text)`, `INSERT INTO notes (body) VALUES ('hello')`} {
			if _, err := conn.Exec(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		until(t, ctx, "the notes insert, live", `document.querySelectorAll('#events li[data-table="public.notes"]').length === 1`, 30*time.Second)
		until(t, ctx, "both tables counted", `document.querySelectorAll('#tables li').length === 2`, 5*time.Second)
		clickCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(clickCtx, chromedp.Click(chromedp.CSS(`#tables li[data-table="public.users"]`))); err != nil {
			t.Fatalf("click the users table: %v", err)
		}
		until(t, ctx, "the table filter", `(() => { const shown = [...document.querySelectorAll('#events li:not(.hidden)')];
			return shown.length === 3 && shown.every(li => li.dataset.table === "public.users") && document.getElementById("f-table").value === "public.users"; })()`, 5*time.Second)

		// The playground: rulecheck's suggestion for "operate", then the
		// corrected pattern matches the insert.
		typePattern(t, ctx, `{"detail-type": ["DatabaseEvent"], "detail": {"table": ["users"], "operate": ["insert"]}}`)
		until(t, ctx, "the operation suggestion", `document.getElementById("p-problems").textContent.includes("did you mean detail.operation?")`, 10*time.Second)
		until(t, ctx, "no match while the pattern is wrong", `document.getElementById("p-status").dataset.matches === "0"`, 5*time.Second)
		typePattern(t, ctx, `{"detail-type": ["DatabaseEvent"], "detail": {"table": ["users"], "operation": ["insert"]}}`)
		until(t, ctx, "the corrected pattern matches the insert", `(() => { const m = [...document.querySelectorAll('#events li.match')];
			return document.getElementById("p-problems").children.length === 0 && document.getElementById("p-status").dataset.matches === "1" &&
				m.length === 1 && m[0].dataset.op === "insert"; })()`, 10*time.Second)

		// A row opens to its JSON, with the rule it matched.
		if err := chromedp.Do(clickCtx, chromedp.Click(chromedp.CSS(`#events li[data-table="public.users"][data-op="insert"] .row`))); err != nil {
			t.Fatalf("click the insert's row: %v", err)
		}
		until(t, ctx, "the insert's JSON", `(() => { const li = document.querySelector('#events li[data-table="public.users"][data-op="insert"]');
			return li.classList.contains("open") && li.querySelector("pre").textContent.includes('"operation": "insert"') &&
				li.querySelector(".detail").textContent.includes("WelcomeEmailRule"); })()`, 5*time.Second)
		// Health from the database and capture's metrics.
		until(t, ctx, "pipeline health", `document.getElementById("h-wal").textContent !== "–" && document.getElementById("h-kinesis").textContent !== "–" &&
			document.getElementById("h-events").textContent === "4"`, 10*time.Second)

		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		shot := os.Getenv("WALBRIDGE_CONSOLE_SCREENSHOT")
		if shot == "" {
			shot = filepath.Join(os.TempDir(), "walbridge-console.png")
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", shot)
	})
}
