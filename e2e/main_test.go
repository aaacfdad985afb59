// Package e2e runs the aidb binary against the real Docker engine and real
// PostgreSQL containers. Each test has its own AIDB_PROJECT and free ports,
// so tests run in parallel and never touch a user's databases, and each
// removes what it created; TestMain checks that nothing labelled with this
// run's projects is left behind.
//
// Without a reachable engine the suite skips, except under CI=true, where it
// fails: CI must not pass by testing nothing.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/testenv"
	"github.com/aidb/aidb/orchestrator"
)

var (
	// aidbBin is the binary under test, built once by TestMain.
	aidbBin string
	// testAppBin is the ai-up tests' web server (./testapp), built once by
	// TestMain.
	testAppBin string
	// runPrefix starts every project name of this run.
	runPrefix = fmt.Sprintf("e2e%d", os.Getpid())
	// docker is the engine the tests inspect.
	docker *client.Client
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ctx := context.Background()
	if cleared := isolateEnv(); len(cleared) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the suite runs without these settings of its environment (they would reach the user's folder, repository or databases): %s\n", strings.Join(cleared, " "))
	}
	d, err := orchestrator.Connect(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: the Docker engine is required under CI: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: skipping the end-to-end suite, no Docker engine: %v\n", err)
		return 0
	}
	docker = d
	defer func() { _ = d.Close() }()

	dir, err := os.MkdirTemp("", "aidb-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	aidbBin = filepath.Join(dir, "aidb")
	// Built in aidb's own module (the folder above), so the binary under
	// test has the dependency versions aidb's go.mod selects, not the ones
	// this module's test dependencies might raise.
	build := exec.Command("go", "build", "-o", aidbBin, "./cmd/aidb")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build aidb:", err)
		return 1
	}
	if err := bringTestTools(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
		return 1
	}
	if testAppBin, err = buildTestApp(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
		return 1
	}

	// Make the default images available once (pull, or build them from
	// Debian's packages), so parallel tests do not all build them at once.
	if err := ensureDefaultImage(ctx, d); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: FAIL: no PostgreSQL image:", err)
		return 1
	}

	code := m.Run()
	if left := leftovers(ctx); left != "" {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the suite left labelled resources behind:\n%s", left)
		return 1
	}
	return code
}

func ensureDefaultImage(ctx context.Context, d *client.Client) error {
	p, err := compose.Load(ctx, compose.Options{WorkingDir: os.TempDir(), Env: []string{"AIDB_PROJECT=" + runPrefix + "-image"}})
	if err != nil {
		return err
	}
	o, err := orchestrator.New(d, p, orchestrator.WithProgress(func(line string) { fmt.Fprintln(os.Stderr, "e2e image:", line) }))
	if err != nil {
		return err
	}
	buildCtx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	// Every database's image, each once: rulesdb's postgres:15, and
	// memorydb's pgvector/pgvector:pg17 with the postgres:17 image it is
	// built on.
	for _, db := range p.Databases {
		if _, err := o.EnsureImage(buildCtx, db.Image); err != nil {
			return err
		}
	}
	return nil
}

// leftovers lists containers, volumes and networks labelled with a project
// of this run (by aidb's label, or Compose's for containers).
func leftovers(ctx context.Context) string {
	var b strings.Builder
	f := make(client.Filters).Add("label", orchestrator.LabelProject)
	mine := func(labels map[string]string) bool {
		return strings.HasPrefix(labels[orchestrator.LabelProject], runPrefix)
	}
	if cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			if mine(c.Labels) {
				fmt.Fprintf(&b, "  container %v\n", c.Names)
			}
		}
	}
	// Compose's containers, should one lack aidb's labels.
	cf := make(client.Filters).Add("label", orchestrator.ComposeProjectLabel)
	if cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: cf}); err == nil {
		for _, c := range cs.Items {
			if strings.HasPrefix(c.Labels[orchestrator.ComposeProjectLabel], runPrefix) && !mine(c.Labels) {
				fmt.Fprintf(&b, "  container %v (Compose's)\n", c.Names)
			}
		}
	}
	if vs, err := docker.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			if mine(v.Labels) {
				fmt.Fprintf(&b, "  volume %s\n", v.Name)
			}
		}
	}
	if ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			if mine(n.Labels) {
				fmt.Fprintf(&b, "  network %s\n", n.Name)
			}
		}
	}
	return b.String()
}

// isolateEnv removes the user's settings (testenv: aidb's, the compose
// file's, the workflow's, the AWS SDK's, libpq's) from this process's
// environment, which every aidb and make the tests run inherits, and
// returns their names.
func isolateEnv() []string {
	_, removed := testenv.Clean(os.Environ())
	for _, name := range removed {
		_ = os.Unsetenv(name)
	}
	return removed
}
