package pgimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// hostTools is what a build needs of the host, as functions so the
// decisions are testable without root or apt.
type hostTools struct {
	goos      string
	euid      int
	lookPath  func(string) (string, error)
	osRelease func() (string, error)
	// run runs a command with its output appended to log.
	run func(ctx context.Context, log io.Writer, name string, args ...string) error
}

func systemTools() hostTools {
	return hostTools{
		goos:     runtime.GOOS,
		euid:     os.Geteuid(),
		lookPath: exec.LookPath,
		osRelease: func() (string, error) {
			b, err := os.ReadFile("/etc/os-release")
			return string(b), err
		},
		run: func(ctx context.Context, log io.Writer, name string, args ...string) error {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			cmd.Stdout, cmd.Stderr = log, log
			return cmd.Run()
		},
	}
}

// ErrNeedsRoot says the build must run as root (debootstrap does).
var ErrNeedsRoot = errors.New("build postgres image: debootstrap needs root")

// ensureHost checks that this machine can build an image, installing
// debootstrap with apt where that is possible (Debian or Ubuntu, as root):
// the first run on a fresh machine must not stop at a missing package. It
// says what it installs; elsewhere the error says exactly what to install.
// apt-get runs as long as the archive needs (bounded by ctx).
func ensureHost(ctx context.Context, h hostTools, log io.Writer, progress func(string)) error {
	if h.goos != "linux" {
		return fmt.Errorf("build postgres image: needs Linux (this is %s); pull an image on a machine that reaches a registry and load it with docker load", h.goos)
	}
	if h.euid != 0 {
		return ErrNeedsRoot
	}
	if _, err := h.lookPath("debootstrap"); err == nil {
		return nil
	}
	text, _ := h.osRelease()
	family := osReleaseValue(text, "ID") + " " + osReleaseValue(text, "ID_LIKE")
	_, aptErr := h.lookPath("apt-get")
	if aptErr != nil || !(strings.Contains(family, "debian") || strings.Contains(family, "ubuntu")) {
		return errors.New("build postgres image: debootstrap is not installed, and this is not a Debian or Ubuntu system where aidb can install it with apt-get; install debootstrap with the system's package manager (e.g. dnf install debootstrap), or build on a Debian machine")
	}
	progress("debootstrap is not installed; installing it: apt-get install -y debootstrap")
	install := func() error { return h.run(ctx, log, "apt-get", "install", "-y", "-q", "debootstrap") }
	err := install()
	if err != nil && ctx.Err() == nil {
		// A fresh machine's package lists may be empty or stale.
		progress("apt-get install failed; updating the package lists (apt-get update) and trying again")
		if err = h.run(ctx, log, "apt-get", "update", "-q"); err == nil {
			err = install()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("build postgres image: install debootstrap with apt-get: %w", err)
	}
	if _, err := h.lookPath("debootstrap"); err != nil {
		return errors.New("build postgres image: apt-get installed debootstrap, but it is not on PATH; add /usr/sbin to PATH")
	}
	return nil
}
