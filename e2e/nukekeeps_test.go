package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nukeCompose is the two databases and a service that is not a database,
// with data of its own in a named volume.
const nukeCompose = `
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_USER: rules, POSTGRES_PASSWORD: pw, POSTGRES_DB: rulesdb}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["rules:/var/lib/postgresql/data"]
  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
    volumes: ["memory:/var/lib/postgresql/data"]
  files:
    image: aidb.local/postgres:15
    entrypoint: ["sleep", "infinity"]
    volumes: ["uploads:/data"]
volumes:
  rules:
  memory:
  uploads:
`

// nukeComposeRulesOnly is nukeCompose without memorydb.
var nukeComposeRulesOnly = strings.NewReplacer(
	`  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
    volumes: ["memory:/var/lib/postgresql/data"]
`, "",
	"  memory:\n", "").Replace(nukeCompose)

func volumeExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := docker.VolumeInspect(t.Context(), name, client.VolumeInspectOptions{})
	return err == nil
}

// TestNukeKeepsVolumesItDidNotBackUp: nuke backs up the databases it
// nukes and removes their volumes; a service's volume that is not a
// database, and the volume of a database the configuration no longer
// names, hold data aidb took no backup of: they are kept and named, and
// go only with --all-volumes.
func TestNukeKeepsVolumesItDidNotBackUp(t *testing.T) {
	t.Parallel()
	p := newProject(t, "nukekeeps")
	p.writeCompose(nukeCompose)
	r := p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	_, err := execIn(t, p.name+"-files-1", "sh", "-c", "echo precious > /data/upload.txt")
	require.NoError(t, err)
	for _, db := range []string{"rulesdb", "memorydb"} {
		_, err := connect(t, p.status()[db].URL).Exec(t.Context(), "CREATE TABLE kept AS SELECT generate_series(1, 10) AS id")
		require.NoError(t, err)
	}

	// The configuration now names rulesdb only.
	compose := filepath.Join(p.dir, "compose.yaml")
	require.NoError(t, os.WriteFile(compose, []byte(nukeComposeRulesOnly), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "aidb.yaml"), []byte("databases:\n  rulesdb: {service: rulesdb}\n"), 0o600))

	r = p.aidb("nuke", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: safety backup in ")
	assert.False(t, volumeExists(t, p.name+"_rules"), "rulesdb's volume, backed up, is removed")
	for _, v := range []string{p.name + "_uploads", p.name + "_memory"} {
		assert.True(t, volumeExists(t, v), "%s, not backed up, is kept", v)
		assert.Contains(t, r.stderr, "kept volume "+v+": ")
	}
	assert.Contains(t, r.stderr, "which is not a database")
	assert.Contains(t, r.stderr, "--all-volumes")

	// The kept data is whole: the service's file is there.
	r = p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	out, err := execIn(t, p.name+"-files-1", "cat", "/data/upload.txt")
	require.NoError(t, err)
	assert.Equal(t, "precious\n", string(out))

	r = p.aidb("nuke", "--yes", "--all-volumes")
	require.Equal(t, 0, r.code, r.stderr)
	for _, v := range []string{p.name + "_uploads", p.name + "_memory", p.name + "_rules"} {
		assert.False(t, volumeExists(t, v), "%s is removed with --all-volumes", v)
	}
}

// TestUpRefusesToLeaveTheDataVolumeBehind: the compose file renamed
// rulesdb's volume. up would replace the container with one on a new,
// empty volume (the database "up", its data unused beside it); it refuses,
// exit 2, and rulesdb runs on as it was.
func TestUpRefusesToLeaveTheDataVolumeBehind(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upvolume")
	p.writeCompose(nukeCompose)
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), "CREATE TABLE kept AS SELECT generate_series(1, 25) AS id")
	require.NoError(t, err)
	id := containerID(t, p.name+"-rulesdb")

	renamed := strings.ReplaceAll(nukeCompose, "rules:/var/lib/postgresql/data", "rules2:/var/lib/postgresql/data")
	renamed = strings.Replace(renamed, "  rules:\n", "  rules:\n  rules2:\n", 1)
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "compose.yaml"), []byte(renamed), 0o600))
	r = p.aidb("up", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "keeps its data in volume "+p.name+"_rules")
	assert.Contains(t, r.stderr, "aidb does not move data between volumes")
	assert.False(t, volumeExists(t, p.name+"_rules2"), "no new volume was made")
	assert.Equal(t, id, containerID(t, p.name+"-rulesdb"), "the same container")
	var n int
	require.NoError(t, connect(t, url).QueryRow(t.Context(), "SELECT count(*) FROM kept").Scan(&n))
	assert.Equal(t, 25, n)
}
