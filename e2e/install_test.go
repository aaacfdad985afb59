package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// go install …/cmd/aidb@version, as docs/adopt.md says, from a module
// proxy that holds aidb's module at a version (made here from the
// checkout's HEAD by git archive, as a module zip) and the module cache
// (or the configured proxy) for its dependencies: the binary installs,
// runs and says its version.
func TestGoInstallAtAVersion(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").CombinedOutput()
	if err != nil {
		t.Skipf("not a git checkout, no module to publish: %v: %s", err, head)
	}
	// A version of its own per commit: the go command takes a module
	// version's files for immutable, so its build cache serves a package
	// compiled from the same version and folder before, whatever the
	// files hold now.
	const mod = "github.com/aidb/aidb"
	ver := "v0.0.1-e2e." + strings.TrimSpace(string(head))[:12]
	proxy := t.TempDir()
	at := filepath.Join(proxy, mod, "@v")
	require.NoError(t, os.MkdirAll(at, 0o755))
	// The module zip: HEAD's files under module@version/, without the
	// modules of their own below it (tools, e2e), as the go command leaves
	// a folder with a go.mod out of the module above it.
	zipFile := filepath.Join(at, ver+".zip")
	out, err := exec.Command("git", "-C", root, "archive", "--format=zip", "--prefix="+mod+"@"+ver+"/", "-o", zipFile, "HEAD", "--", ".", ":(exclude)tools", ":(exclude)e2e").CombinedOutput()
	require.NoError(t, err, "%s", out)
	gomod, err := exec.Command("git", "-C", root, "show", "HEAD:go.mod").Output()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(at, ver+".mod"), gomod, 0o644))
	info := fmt.Sprintf(`{"Version":%q,"Time":%q}`, ver, time.Now().UTC().Format(time.RFC3339))
	require.NoError(t, os.WriteFile(filepath.Join(at, ver+".info"), []byte(info), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(at, "list"), []byte(ver+"\n"), 0o644))

	goenv := func(name string) string {
		v, err := exec.Command("go", "env", name).Output()
		require.NoError(t, err)
		return strings.TrimSpace(string(v))
	}
	// The user's module cache, so that the dependencies are the files the
	// suite's own build of aidb compiled (the build cache keys a package by
	// its folder: a module cache of the test's own recompiled every
	// dependency, 2.5 minutes of the suite). The made-up version is written
	// writable (-modcacherw) and removed again, with the download cache's
	// entries for it; aidb's folders there go too when this test made them.
	modcache := goenv("GOMODCACHE")
	extracted := filepath.Join(modcache, mod+"@"+ver)
	downloads := filepath.Join(modcache, "cache", "download", mod, "@v")
	_, statErr := os.Stat(filepath.Join(modcache, "cache", "download", mod))
	madeDownloads := os.IsNotExist(statErr)
	listFile := filepath.Join(downloads, "list")
	listBefore, listErr := os.ReadFile(listFile)
	t.Cleanup(func() {
		// The go command adds the version to the download cache's list.
		if listErr == nil {
			assert.NoError(t, os.WriteFile(listFile, listBefore, 0o644))
		}
		assert.NoError(t, os.RemoveAll(extracted))
		_ = os.Remove(filepath.Dir(extracted)) // only when empty: aidb's folder, if this test made it
		files, err := filepath.Glob(filepath.Join(downloads, ver+".*"))
		assert.NoError(t, err)
		for _, f := range files {
			assert.NoError(t, os.Remove(f))
		}
		if madeDownloads {
			assert.NoError(t, os.RemoveAll(filepath.Join(modcache, "cache", "download", mod)))
		}
	})
	env := append(os.Environ(), "GOFLAGS=-modcacherw")
	gobin := t.TempDir()
	install := exec.Command("go", "install", mod+"/cmd/aidb@"+ver)
	install.Dir = t.TempDir() // outside any module, as a user runs it
	install.Env = append(env,
		"GOBIN="+gobin,
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(modcache, "cache", "download"))+","+goenv("GOPROXY"),
		"GONOSUMDB="+mod,
	)
	out, err = install.CombinedOutput()
	require.NoError(t, err, "go install %s/cmd/aidb@%s:\n%s", mod, ver, out)

	bin := filepath.Join(gobin, "aidb")
	if _, err := os.Stat(bin + ".exe"); err == nil {
		bin += ".exe"
	}
	v, err := exec.Command(bin, "--version").CombinedOutput()
	require.NoError(t, err, "%s", v)
	assert.Contains(t, string(v), ver, "the installed binary says the version it was installed at")
	assert.NotContains(t, string(v), "devel")
	assert.NotContains(t, string(v), "no VCS revision", "a module version needs no revision beside it")
	t.Logf("aidb --version: %s", v)
	h, err := exec.Command(bin, "init", "--help").CombinedOutput()
	require.NoError(t, err, "%s", h)
	assert.Contains(t, string(h), "aidb.yaml", "the installed binary has aidb init")
}
