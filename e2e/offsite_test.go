package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ageKeyFiles writes a fresh age identity and its recipients file into a
// folder of t's: (recipients, identity).
func ageKeyFiles(t *testing.T) (string, string, *age.X25519Identity) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	dir := t.TempDir()
	recipients, identity := filepath.Join(dir, "recipients.txt"), filepath.Join(dir, "me.key")
	require.NoError(t, os.WriteFile(recipients, []byte(id.Recipient().String()+"\n"), 0o600))
	require.NoError(t, os.WriteFile(identity, []byte(id.String()+"\n"), 0o600))
	return recipients, identity, id
}

// TestRepositoryAloneBringsTheDataBack: make ai-db-backup-all with a
// repository, encrypted, streams every file to the bucket as it is written;
// then the folder is deleted and the databases nuked. From the bucket
// alone list shows the backups, verify --all proves them, a restore
// without the identity is refused (exit 2, nothing changed), and restores
// (the make target among them) give every row back.
func TestRepositoryAloneBringsTheDataBack(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-offsite")
	p := newProject(t, "offsite")
	dir := p.backupDir()
	recipients, identity, id := ageKeyFiles(t)
	p.useRepository(s3.endpoint(), "s3://aidb-offsite/team")
	p.env = append(p.env, "AIDB_AGE_RECIPIENTS_FILE="+recipients)
	noIdentity := p.env
	p.env = append(slices.Clone(p.env), "AIDB_AGE_IDENTITY_FILE="+identity)
	p.seeded("40")
	st := p.status()
	before := map[string]map[string][]string{"rulesdb": content(t, st["rulesdb"].URL), "memorydb": content(t, st["memorydb"].URL)}

	r := p.makeTarget("ai-db-backup-all")
	require.Equal(t, 0, r.code, r.stderr)
	urls := map[string]string{}
	for _, k := range s3.keys("aidb-offsite") {
		name := strings.TrimPrefix(k, "team/")
		for _, db := range []string{"rulesdb", "memorydb"} {
			if strings.HasPrefix(name, db+"-") && strings.HasSuffix(name, ".age") {
				urls[db] = "s3://aidb-offsite/" + k
				assert.Contains(t, r.stderr, urls[db], "the backup names where it went")
			}
		}
	}
	require.Len(t, urls, 2, "%v", s3.keys("aidb-offsite"))
	assert.Len(t, s3.keys("aidb-offsite"), 5, "two files, their manifests and the set manifest: %v", s3.keys("aidb-offsite"))

	// The folder is gone, the databases nuked.
	require.NoError(t, os.RemoveAll(dir))
	r = p.aidb("nuke", "--yes", "--no-backup")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, os.RemoveAll(dir))
	require.Equal(t, 0, p.aidb("up").code)
	st = p.status()

	listed := p.listAll()
	require.Len(t, listed, 2, "%v", listed)
	for db, u := range urls {
		require.Contains(t, listed, u, db)
		assert.Equal(t, "repository", listed[u].Location)
		assert.True(t, listed[u].ChecksumOK, u)
	}

	// Without the identity: refused before anything changed.
	empty := content(t, st["rulesdb"].URL)
	withIdentity := p.env
	p.env = noIdentity
	r = p.aidb("restore", "--yes", "rulesdb", urls["rulesdb"])
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "is encrypted to "+id.Recipient().String())
	assert.Equal(t, empty, content(t, st["rulesdb"].URL), "refused before anything changed")

	p.env = withIdentity
	r = p.aidb("verify", "--all", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	for _, u := range urls {
		assert.Contains(t, r.stdout, `"file": "`+u+`"`, "verify --all names the repository's backups by URL")
	}
	_, err := os.Stat(dir)
	if err == nil {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			assert.NotContains(t, e.Name(), ".sql", "no copy of a backup in the folder: %s", e.Name())
		}
	}

	// check sees the repository's backups, verified (recorded in the
	// folder's log by name and sha256), though the folder holds none.
	r = p.aidb("check", "--max-age", "1h", "--verified")
	assert.Equal(t, 0, r.code, "check over the repository: %s", r.stderr)

	r = p.makeTarget("ai-db-restore", "BACKUP="+urls["rulesdb"])
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("restore", "--yes", "--no-backup", "memorydb", urls["memorydb"])
	require.Equal(t, 0, r.code, r.stderr)
	for _, db := range []string{"rulesdb", "memorydb"} {
		assert.Equal(t, before[db], content(t, st[db].URL), "%s: row for row", db)
	}

	// --no-local: in the repository only, once uploaded.
	r = p.aidb("backup", "rulesdb", "--no-local", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"url": "s3://aidb-offsite/team/rulesdb-`)
	for f, b := range p.listAll() {
		assert.Equal(t, "repository", b.Location, "%s: no copy in the folder", f)
	}
	assert.Len(t, p.listAll(), 3)
	r = p.aidb("backup", "rulesdb", "--no-local", "--verify")
	assert.Equal(t, 2, r.code, r.stderr)
}

// bulk gives rulesdb a table of about 25 MB of rows (uncompressed), so
// that its backup goes up in several parts.
func (p *project) bulk() {
	p.t.Helper()
	conn := connect(p.t, p.status()["rulesdb"].URL)
	_, err := conn.Exec(p.t.Context(), `CREATE TABLE bulk AS SELECT i, md5(i::text) || md5((i*7)::text) AS a, md5((i*3)::text) AS b
		FROM generate_series(1, 300000) AS i`)
	require.NoError(p.t, err)
}

// An upload interrupted mid-way, by Ctrl-C of the backup and by the S3
// server killed, leaves nothing listed as whole in the repository; after
// Ctrl-C the folder holds nothing either, after the server's death the
// local backup is whole and aidb push says it is next.
func TestRepositoryInterruptedUploadAsWritten(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-stop")
	p := newProject(t, "offcut")
	dir := p.backupDir()
	p.seeded("20", "rulesdb")
	p.bulk()

	for _, how := range []string{"ctrl-c", "server killed"} {
		proxy := newCutProxy(t, s3.addr(), 10<<20) // part 1 and some of part 2
		env := p.env
		p.useRepository(proxy.endpoint(), "s3://aidb-stop/team")
		cmd := p.command(t.Context(), "backup", "rulesdb")
		var stderr safeBuffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		require.NoError(t, proxy.waitReached(t.Context(), 3*time.Minute), stderr.String())
		if how == "ctrl-c" {
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
		} else {
			s3.kill()
		}
		err := cmd.Wait()
		require.Error(t, err, "%s: %s", how, stderr.String())
		p.env = env // the folder alone
		if how == "ctrl-c" {
			assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
			assert.Empty(t, p.list(), "Ctrl-C: no backup in the folder")
		} else {
			assert.Equal(t, 1, cmd.ProcessState.ExitCode(), stderr.String())
			assert.Contains(t, stderr.String(), "run aidb push when the repository answers")
			assert.Len(t, p.list(), 1, "the local backup is whole")
			s3.start()
		}
		assert.Empty(t, partials(t, dir), how)
		p.useRepository(s3.endpoint(), "s3://aidb-stop/team")
		for f, b := range p.listAll() {
			assert.NotEqual(t, "repository", b.Location, "%s: %s is listed from the repository", how, f)
		}
		for _, k := range s3.keys("aidb-stop") {
			assert.False(t, strings.HasSuffix(k, ".manifest.json"), "%s: no manifest object: %s", how, k)
		}
		p.env = env
	}
}

// An encrypted data-only backup taken --with-role-passwords: its manifest
// holds neither the schema SQL nor a password hash in plain text (both
// sealed with age to the backup's recipients), and it still verifies (the
// schema part opened with the identity, the roles created with their
// passwords in the throwaway).
func TestEncryptedDataOnlyManifestHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	p := newProject(t, "sealed")
	p.backupDir()
	recipients, identity, _ := ageKeyFiles(t)
	p.env = append(p.env, "AIDB_AGE_RECIPIENTS_FILE="+recipients, "AIDB_AGE_IDENTITY_FILE="+identity)
	p.seeded("20", "rulesdb")
	conn := connect(t, p.status()["rulesdb"].URL)
	_, err := conn.Exec(t.Context(), `CREATE ROLE offsite_reader LOGIN PASSWORD 'not-in-the-manifest'; GRANT SELECT ON rules TO offsite_reader`)
	require.NoError(t, err)
	var hash string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT rolpassword FROM pg_authid WHERE rolname = 'offsite_reader'`).Scan(&hash))
	require.NotEmpty(t, hash)

	res := p.backupJSON("rulesdb", "--data-only", "--with-role-passwords")
	require.Len(t, res.Files, 1)
	file := res.Files[0].Path
	raw, err := os.ReadFile(file + ".manifest.json")
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "CREATE TABLE", "no schema SQL in plain text")
	assert.NotContains(t, string(raw), hash, "no password hash in plain text")
	assert.NotContains(t, string(raw), "SCRAM-SHA-256", "no password hash in plain text")
	m := readManifest(t, file)
	require.NotNil(t, m.Sealed, "the secret parts are sealed")
	assert.Contains(t, m.Sealed.Age, "-----BEGIN AGE ENCRYPTED FILE-----")
	require.NotNil(t, m.Schema)
	assert.Len(t, m.Schema.SHA256, 64, "the schema part keeps its sha256")
	var names []string
	for _, r := range m.Roles {
		names = append(names, r.Name)
		assert.Empty(t, r.Password, r.Name)
	}
	assert.Contains(t, names, "offsite_reader")

	r := p.aidb("verify", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "equal")

	// A changed sealed part is damage, found before a throwaway starts.
	m.Sealed.Age = strings.Replace(m.Sealed.Age, "\n", "\n\n", 1)
	b, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file+".manifest.json", b, 0o600))
	r = p.aidb("verify", file)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "the sealed part of the manifest")
}
