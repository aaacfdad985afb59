package aidbtest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeAidb writes a stand-in for the aidb command that logs its
// arguments (one run per line) to log and answers clone with a clone.
func fakeAidb(t *testing.T) (bin, log string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in aidb is a shell script")
	}
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "aidb"), filepath.Join(dir, "log")
	script := `#!/bin/sh
echo "$AIDB_PROJECT $*" >> "` + log + `"
if [ "$1" = clone ] && [ "$2" != rm ]; then
  echo '{"clone":{"name":"t1234","from":"base"},"url":"postgres://u:p@127.0.0.1:1/rulesdb_clone_t1234"}'
fi
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func TestCloneRemovesItsCloneAtCleanup(t *testing.T) {
	t.Parallel()
	bin, log := fakeAidb(t)
	t.Run("a test", func(t *testing.T) {
		db := Clone(t, "rulesdb", Binary(bin), From("base"), Env("AIDB_PROJECT=p1"))
		if db.URL != "postgres://u:p@127.0.0.1:1/rulesdb_clone_t1234" || db.Name != "t1234" || db.Snapshot != "base" || db.Database != "rulesdb" {
			t.Fatalf("Clone = %+v", db)
		}
	})
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "p1 clone rulesdb --json --ttl 1h0m0s --from base\np1 clone rm t1234 rulesdb\n"
	if string(b) != want {
		t.Fatalf("aidb ran:\n%s\nwant:\n%s", b, want)
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, _ ...any) {
	f.failed = format
	panic(f)
}

func TestCloneFailsTheTestWithAidbsMessage(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "aidb")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'aidb: rulesdb has no snapshot' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("Clone did not fail the test: %v", r)
			}
		}()
		Clone(f, "rulesdb", Binary(bin))
	}()
	if !strings.Contains(f.failed, "aidbtest: clone") {
		t.Fatalf("failed with %q", f.failed)
	}
}
