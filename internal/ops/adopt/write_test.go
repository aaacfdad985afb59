package adopt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	plan := func(t *testing.T) Plan {
		dir := t.TempDir()
		return Plan{Dir: dir, ComposeFile: filepath.Join(dir, "compose.yaml"),
			Databases: []Database{{Name: "rulesdb", Service: "rulesdb", Image: "postgres:17"}}}
	}
	loads := func(string) error { return nil }
	entries := func(t *testing.T, dir string) []string {
		es, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}

	t.Run("writes both files, the config as it was loaded", func(t *testing.T) {
		t.Parallel()
		p := plan(t)
		var loaded []byte
		w, err := p.Write(false, func(f string) error {
			var err error
			loaded, err = os.ReadFile(f)
			return err
		})
		require.NoError(t, err)
		assert.Equal(t, Written{Config: filepath.Join(p.Dir, "aidb.yaml"), Makefile: filepath.Join(p.Dir, "Makefile.ai")}, w)
		cfg, err := os.ReadFile(w.Config)
		require.NoError(t, err)
		assert.Equal(t, p.Config(), cfg)
		assert.Equal(t, p.Config(), loaded)
		mk, err := os.ReadFile(w.Makefile)
		require.NoError(t, err)
		assert.Equal(t, p.Makefile(), mk)
		assert.ElementsMatch(t, []string{"aidb.yaml", "Makefile.ai"}, entries(t, p.Dir), "no temporary file is left")
	})
	t.Run("an existing file is refused without force, replaced with it", func(t *testing.T) {
		t.Parallel()
		p := plan(t)
		mk := filepath.Join(p.Dir, "Makefile.ai")
		require.NoError(t, os.WriteFile(mk, []byte("mine\n"), 0o644))
		_, err := p.Write(false, loads)
		require.Error(t, err)
		assert.Equal(t, fault.Invalid, fault.KindOf(err))
		assert.Contains(t, err.Error(), mk+" exists")
		assert.Equal(t, []string{"Makefile.ai"}, entries(t, p.Dir), "nothing was written")

		_, err = p.Write(true, loads)
		require.NoError(t, err)
		b, err := os.ReadFile(mk)
		require.NoError(t, err)
		assert.Equal(t, p.Makefile(), b)
	})
	t.Run("a config that does not load writes nothing", func(t *testing.T) {
		t.Parallel()
		p := plan(t)
		_, err := p.Write(false, func(string) error { return errors.New("no published port") })
		require.Error(t, err)
		assert.Equal(t, fault.Invalid, fault.KindOf(err))
		assert.Equal(t, "the aidb.yaml init would write does not load: no published port; fix the compose file (or write aidb.yaml by hand); nothing was written", err.Error())
		assert.Empty(t, entries(t, p.Dir))
	})
}
