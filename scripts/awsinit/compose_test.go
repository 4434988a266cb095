package main

// No Docker engine runs where the tests run, so this test reads
// docker-compose.yml and checks that everything it refers to exists: the
// services a depends_on or anchor names, the repository paths its volumes
// mount, the commands and packages its services run, and well-formed ports.

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/repo"
	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]struct {
		Image     string         `yaml:"image"`
		Command   []string       `yaml:"command"`
		Ports     []string       `yaml:"ports"`
		Volumes   []string       `yaml:"volumes"`
		DependsOn map[string]any `yaml:"depends_on"`
		Env       map[string]any `yaml:"environment"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeFileReferencesExist(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"postgres", "localstack", "init", "capture"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	if ls := c.Services["localstack"]; !strings.Contains(ls.Env["SERVICES"].(string), "kinesis") {
		t.Errorf("localstack SERVICES %v", ls.Env["SERVICES"])
	} else {
		for _, svc := range []string{"kinesis", "events", "lambda", "sqs", "s3", "logs"} {
			if !strings.Contains(ls.Env["SERVICES"].(string), svc) {
				t.Errorf("localstack does not run %s", svc)
			}
		}
	}
	if pg := c.Services["postgres"]; !strings.Contains(strings.Join(pg.Command, " "), "wal_level=logical") {
		t.Errorf("postgres does not run with wal_level=logical: %v", pg.Command)
	}
	port := regexp.MustCompile(`^\d+:\d+$`)
	// Paths a command names: scripts, and Go packages run with go run.
	pathRef := regexp.MustCompile(`(?:^|[\s;&])(scripts/[\w-]+|\./[\w/-]+)`)
	for name, s := range c.Services {
		if s.Image == "" {
			t.Errorf("%s: no image", name)
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
		for _, p := range s.Ports {
			if !port.MatchString(p) {
				t.Errorf("%s: port %q", name, p)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			switch {
			case strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/"):
				if strings.HasPrefix(src, "/var/run/") {
					continue // the Docker socket, on the Docker host
				}
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s mounts %s, which is not in the repository", name, src)
				}
			default:
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s mounts volume %s, which is not declared", name, src)
				}
			}
		}
		for _, m := range pathRef.FindAllStringSubmatch(strings.Join(s.Command, " "), -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s runs %s, which is not in the repository", name, m[1])
			}
		}
	}
	// The init step is the shared provisioning code, with flags it knows.
	initCmd := strings.Join(c.Services["init"].Command, " ")
	if !strings.Contains(initCmd, "./scripts/awsinit") {
		t.Fatalf("init does not run scripts/awsinit: %s", initCmd)
	}
	for _, flag := range regexp.MustCompile(`--([\w-]+)`).FindAllStringSubmatch(initCmd[strings.Index(initCmd, "./scripts/awsinit"):], -1) {
		if err := run(t.Context(), []string{"--" + flag[1] + "=x", "-h"}, os.Stderr); err != nil && strings.Contains(err.Error(), "not defined") {
			t.Errorf("init passes --%s, which awsinit does not know", flag[1])
		}
	}
}

func TestZipBootstrap(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	z, err := zipBootstrap(bin)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm()&0o111 == 0 {
		t.Fatalf("zip holds %d files, first %q mode %v; want one executable bootstrap", len(zr.File), zr.File[0].Name, zr.File[0].Mode())
	}
	if _, err := zipBootstrap(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "scripts/build-fanout") {
		t.Fatalf("missing bootstrap: %v", err)
	}
}
