package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocsManWritesAPagePerCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "man1")
	code, _, stderr := runAidb(t, "docs", "man", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, page := range []string{"aidb.1", "aidb-backup.1", "aidb-verify.1", "aidb-check.1", "aidb-serve.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		if !strings.Contains(string(b), ".TH") {
			t.Errorf("%s is not a man page", page)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "aidb-verify.1"))
	if !strings.Contains(string(b), "shard") {
		t.Error("the verify page lacks its flags")
	}
}

func TestVerifyShardNeedsAllAndAGoodSpec(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"verify", "--shard", "1/2", "x.sql"}, {"verify", "--all", "--shard", "0/2"}, {"verify", "--all", "--shard", "two"}} {
		if code, _, stderr := runAidb(t, args...); code != 2 || !strings.Contains(stderr, "--shard") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
}
