// Package localfn runs the Lambda functions of a handler's template on this
// machine, so that the local bus can deliver events to them the way
// EventBridge invokes a function: it builds the code as the template says it
// is built (a Go bootstrap for provided.* runtimes; npm ci and tsc for a
// TypeScript package on nodejs*) and serves it under the Lambda runtime
// interface emulator (aws-lambda-rie, which scripts/install-deps installs in
// bin/). An invocation is then a real one: the Runtime API, the handler's
// logs, its result and its errors.
//
// Only code that lives beside its template can be run: the handlers
// scripts/newhandler writes (Go: package main in the template's folder;
// TypeScript: package.json and tsconfig.json there). Node.js handlers run
// through runtime.cjs, a small Runtime API client of our own (Lambda's
// Node.js runtime is not an npm package that installs here).
package localfn

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/walbridge/walbridge/shared/cfnrules"
)

// Kind is how a function is built and started.
type Kind string

const (
	// Go is package main built into a bootstrap (Runtime provided.*).
	Go Kind = "go"
	// Node is a Node.js package (Runtime nodejs*), compiled with its own
	// tsc when it has a tsconfig.json.
	Node Kind = "node"
)

// Spec is one function of a template that can run here.
type Spec struct {
	// Template is the template file and ID the function's logical ID.
	Template, ID string
	Kind         Kind
	// Dir is the folder the code is built in: the template's folder.
	Dir string
	// CodeDir is where a Node.js function's code is loaded from (CodeUri
	// under Dir, e.g. dist/); Handler is Lambda's file.export.
	CodeDir, Handler string
	// TypeScript says whether Dir has a tsconfig.json to compile with.
	TypeScript bool
	// Timeout is the function's timeout in seconds (3, Lambda's default,
	// when the template has none).
	Timeout string
}

// Key names a spec among those of every template.
func (s Spec) Key() string { return s.Template + "#" + s.ID }

// Specs returns the functions of a template file that can run here, and
// for each of the others why not (by logical ID).
func Specs(template string) (specs []Spec, notRunnable map[string]error, err error) {
	data, err := os.ReadFile(template)
	if err != nil {
		return nil, nil, err
	}
	fns, err := cfnrules.Functions(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", template, err)
	}
	dir, err := filepath.Abs(filepath.Dir(template))
	if err != nil {
		return nil, nil, err
	}
	notRunnable = map[string]error{}
	for _, f := range fns {
		s, err := spec(template, dir, f)
		if err != nil {
			notRunnable[f.ID] = err
			continue
		}
		specs = append(specs, s)
	}
	return specs, notRunnable, nil
}

func spec(template, dir string, f cfnrules.Function) (Spec, error) {
	s := Spec{Template: template, ID: f.ID, Dir: dir, Handler: f.Handler, Timeout: f.Timeout}
	if s.Timeout == "" {
		s.Timeout = "3"
	}
	if f.Inline {
		return s, errors.New("its code is inline in the template")
	}
	switch {
	case strings.HasPrefix(f.Runtime, "provided"):
		if !hasGoMain(dir) {
			return s, fmt.Errorf("runtime %s, but %s has no Go package main to build", f.Runtime, dir)
		}
		s.Kind = Go
	case strings.HasPrefix(f.Runtime, "nodejs"):
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
			return s, fmt.Errorf("runtime %s, but %s has no package.json", f.Runtime, dir)
		}
		if f.CodeURI == "" || filepath.IsAbs(f.CodeURI) {
			return s, fmt.Errorf("CodeUri %q is not a folder beside the template", f.CodeURI)
		}
		if !strings.Contains(f.Handler, ".") {
			return s, fmt.Errorf("Handler %q: want file.export", f.Handler)
		}
		s.Kind = Node
		s.CodeDir = filepath.Join(dir, f.CodeURI)
		_, err := os.Stat(filepath.Join(dir, "tsconfig.json"))
		s.TypeScript = err == nil
	default:
		return s, fmt.Errorf("runtime %q: only provided.* (Go) and nodejs* run locally", f.Runtime)
	}
	return s, nil
}

// hasGoMain says whether dir holds a Go file of package main.
func hasGoMain(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "package ") {
				if strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main" {
					return true
				}
				break
			}
		}
	}
	return false
}

// SourceStamp fingerprints the files a spec is built from (names, sizes,
// modification times; node_modules and the build output left out), so that
// a changed handler is built again.
func SourceStamp(s Spec) string {
	var b strings.Builder
	filepath.WalkDir(s.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path != s.Dir && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") ||
				(s.Kind == Node && path == s.CodeDir) || s.Kind == Go) {
				return filepath.SkipDir // a Go handler is its folder's own files
			}
			return nil
		}
		if info, err := d.Info(); err == nil {
			fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// nodeRuntime is the Runtime API client Node.js handlers run under.
//
//go:embed runtime.cjs
var nodeRuntime []byte
