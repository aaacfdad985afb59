package pgtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
)

// The credentials part of a helper's script writes the pgpass line libpq
// reads, whatever the password holds, with a shell builtin (no process's
// arguments show it), into a file only its owner may read.
func TestHelperCredentialsScript(t *testing.T) {
	t.Parallel()
	db := compose.Database{User: "ru:les", Password: `p'a:s\s "$(x)` + "`y` ;*"}
	h := &helper{db: db}
	script := h.credentials()
	assert.NotContains(t, script, "PGPASSWORD", "the password goes into a file, not the environment")
	dir := t.TempDir()
	script = strings.ReplaceAll(script, secretDir, dir)
	out, err := exec.Command("sh", "-c", script+`printf '%s' "$PGPASSFILE"`).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, filepath.Join(dir, "pgpass"), string(out))
	b, err := os.ReadFile(filepath.Join(dir, "pgpass"))
	require.NoError(t, err)
	assert.Equal(t, pgpassLine(db), string(b))
	assert.Equal(t, `*:*:*:ru\:les:p'a\:s\\s "$(x)`+"`y` ;*\n", string(b))
	st, err := os.Stat(filepath.Join(dir, "pgpass"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
