//go:build windows

package e2e

import (
	"errors"
	"os/exec"
)

// The e2e tests run on Linux; these keep the package building elsewhere.

func ownGroup(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

func terminate(int) error { return errors.New("SIGTERM: not on Windows") }
