package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// testTools are the programs the suite runs that are not aidb: the S3
// server of the repository tests and age's tools of the admin guide. They
// are pinned as Go tools in ../tools/go.mod (a module of its own, so that
// versitygw's dependencies stay out of aidb's graph), so the suite needs
// nothing but Go and Docker.
var testTools = []string{"versitygw", "age", "age-keygen"}

// bringTestTools puts testTools on PATH: those PATH already has (make test
// builds them into .tools/bin) are used as they are; otherwise every tool
// of ../tools is built into dir (about 2 minutes cold on 2 cores, seconds
// with a warm build cache) and dir goes first on PATH.
func bringTestTools(dir string) error {
	var missing []string
	for _, name := range testTools {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(os.Stderr, "e2e: building the test tools of ../tools/go.mod (%s not on PATH)\n", strings.Join(missing, ", "))
	build := exec.Command("go", "build", "-C", filepath.Join("..", "tools"), "-o", dir+string(os.PathSeparator), "tool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the test tools (go build -C tools -o DIR/ tool): %w", err)
	}
	return os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// buildTestApp builds the web server of the ai-up tests' service image
// (./testapp: static, no cgo, so it runs in an image that holds nothing
// else) into dir and returns its path.
func buildTestApp(dir string) (string, error) {
	out := filepath.Join(dir, "testapp")
	build := exec.Command("go", "build", "-trimpath", "-o", out, "./testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build the ai-up tests' web server (./testapp): %w", err)
	}
	return out, nil
}
