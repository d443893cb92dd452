//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds the demo in the test, as -timeout does.
const testTimeout = 30 * time.Second

// The demo drives the real binaries, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portmap-demo-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "../portmap", "../userland-proxy")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		panic("building portmap and userland-proxy: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out bytes.Buffer
	d := &demo{portmap: filepath.Join(binDir, "portmap"), out: &out}

	if err := d.run(ctx); err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{
		`-> 200 OK "hello from the demo backend"`,
		`-> "hello through tcp"`,
		`-> "hello through udp"`,
		"stopped portmap with SIGINT: exit status 0",
		"demo ok in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemoWithoutPortmap(t *testing.T) {
	var out bytes.Buffer
	d := &demo{portmap: filepath.Join(t.TempDir(), "portmap"), out: &out}

	err := d.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "make build puts it in bin/") {
		t.Errorf("demo without portmap: %v; want advice to build it", err)
	}
}
