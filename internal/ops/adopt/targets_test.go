package adopt

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every make target, of the story's workflow.mk and of aidb's own
// Makefile.ai, is named in the README or a document under docs/: a target
// nobody can find is one nobody runs.
func TestEveryMakeTargetIsDocumented(t *testing.T) {
	t.Parallel()
	var docs strings.Builder
	files, err := filepath.Glob("../../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no documents under docs/: %v", err)
	}
	for _, f := range append(files, "../../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
		docs.WriteByte('\n')
	}
	rule := regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	seen := 0
	for _, mk := range []string{"workflow.mk", "../../../Makefile.ai"} {
		b, err := os.ReadFile(mk)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rule.FindAllStringSubmatch(string(b), -1) {
			seen++
			named := regexp.MustCompile(`(^|[^a-z0-9-])` + regexp.QuoteMeta(m[1]) + `([^a-z0-9-]|$)`)
			if !named.MatchString(docs.String()) {
				t.Errorf("%s: target %s is named in neither README.md nor docs/*.md", mk, m[1])
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found %d targets in workflow.mk and Makefile.ai; the rule pattern no longer matches them", seen)
	}
}
