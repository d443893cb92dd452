//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Where docker-proxy may already be on a machine, after $PATH.
var dockerProxyPaths = []string{
	"/usr/sbin/docker-proxy",
	"/usr/bin/docker-proxy",
	"/usr/libexec/docker/docker-proxy",
}

// aptTimeout bounds each apt-get run.
const aptTimeout = 3 * time.Minute

// findDocker takes docker-proxy from the system when it is installed, else
// the copy an earlier run fetched, else fetches Debian's docker.io package
// and unpacks only the proxy from it. A proxy that does not know
// -use-listen-fd binds its port itself, as it does under older daemons.
func findDocker(ctx context.Context, cfg config, p *peer, log io.Writer) {
	if err := locateDocker(ctx, cfg, p, log); err != nil {
		p.path = ""
		p.missing = err.Error()
		return
	}
	p.listenFD = knowsListenFD(ctx, p.path)
}

func locateDocker(ctx context.Context, cfg config, p *peer, log io.Writer) error {
	if installed := installedDocker(); installed != "" {
		p.path, p.about = installed, installed+" (installed)"
		return nil
	}
	p.path = filepath.Join(cfg.out, "peers", "docker-proxy")
	if about, err := os.ReadFile(p.path + ".about"); err == nil {
		if _, err := os.Stat(p.path); err == nil {
			p.about = string(about)
			return nil
		}
	}
	if !cfg.fetch {
		return errors.New("not installed, and fetching is off (-fetch=false)")
	}
	fmt.Fprintln(log, "docker-proxy: fetching Debian's docker.io package with apt-get")
	about, err := fetchDocker(ctx, p.path)
	if err != nil {
		return fmt.Errorf("not installed, and fetching it failed: %w", err)
	}
	p.about = about
	return os.WriteFile(p.path+".about", []byte(about), 0o644)
}

func installedDocker() string {
	if path, err := exec.LookPath("docker-proxy"); err == nil {
		return path
	}
	for _, path := range dockerProxyPaths {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			return path
		}
	}
	return ""
}

// fetchDocker downloads the docker.io package into a temporary directory,
// refreshing apt's lists once if the download fails, and writes its
// docker-proxy to dst. It returns where the binary came from.
func fetchDocker(ctx context.Context, dst string) (string, error) {
	tmp, err := os.MkdirTemp("", "bench-docker-io-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	if err := apt(ctx, tmp, "download", "docker.io"); err != nil {
		if err := apt(ctx, tmp, "update"); err != nil {
			return "", err
		}
		if err := apt(ctx, tmp, "download", "docker.io"); err != nil {
			return "", err
		}
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "docker.io_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download left %d packages", len(debs))
	}
	member, err := unpackProxy(ctx, debs[0], dst)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Debian docker.io %s, %s", debVersion(ctx, debs[0]), member), nil
}

func apt(ctx context.Context, dir string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, aptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-q"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err,
			lastLine(out))
	}
	return nil
}

func debVersion(ctx context.Context, deb string) string {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		return "(unknown version)"
	}
	return strings.TrimSpace(string(out))
}

// unpackProxy copies the package's docker-proxy, and nothing else, to dst.
// It returns the member's path inside the package.
func unpackProxy(ctx context.Context, deb, dst string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-deb --fsys-tarfile: %w", err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err != nil {
			return "", fmt.Errorf("no docker-proxy in %s: %w", filepath.Base(deb), err)
		}
		if h.Typeflag == tar.TypeReg && path.Base(h.Name) == "docker-proxy" {
			return path.Clean(h.Name), writeExecutable(dst, tr)
		}
	}
}

func writeExecutable(dst string, r io.Reader) error {
	tmp := dst + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
