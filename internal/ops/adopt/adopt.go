// Package adopt brings aidb into a project of its own: it finds the
// PostgreSQL services of the project's compose file and the migration
// folders beside it (Inspect), and renders the aidb.yaml and the
// Makefile.ai that run the user story's workflow there (Plan.Config,
// Plan.Makefile): a Makefile.ai that calls aidb from PATH and needs no Go
// module. It writes nothing itself; aidb init does.
package adopt

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Workflow is the user story's targets (workflow.mk): aidb's own
// Makefile.ai includes it, and an adopted project's holds it whole.
//
//go:embed workflow.mk
var Workflow string

// Database is one PostgreSQL service of the project, as aidb.yaml will
// name it.
type Database struct {
	// Name is the database's name in aidb.yaml (the service's).
	Name    string
	Service string
	Image   string
	// Migrations is its goose migration folder, relative to the project's
	// folder ("" for none found).
	Migrations string
}

// Plan is what aidb init makes of a project.
type Plan struct {
	// Dir is the project's folder (the compose file's).
	Dir         string
	ComposeFile string
	// Databases are the PostgreSQL services, by name; the first is the
	// story's rulesdb (the ai-db-* targets), the second its memorydb.
	Databases []Database
	// Folders are the goose migration folders found (relative), whether
	// or not a database was given one.
	Folders []string
	// Notes say what Inspect could not decide, for the user.
	Notes []string
}

// postgresImages are the image repositories (their last path element)
// that run PostgreSQL.
var postgresImages = []string{"postgres", "pgvector", "postgis", "timescaledb", "timescaledb-ha", "postgresql"}

// IsPostgres says whether an image runs PostgreSQL, by its repository's
// name: postgres:15, pgvector/pgvector:pg17, postgis/postgis:16-3.4,
// registry.example/team/postgres@sha256:….
func IsPostgres(image string) bool {
	repo := image
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, '/'); i >= 0 {
		repo = repo[i+1:]
	}
	if i := strings.IndexByte(repo, ':'); i >= 0 {
		repo = repo[:i]
	}
	return slices.Contains(postgresImages, strings.ToLower(repo))
}

// Inspect plans the adoption of the project whose compose file is
// composeFile, from the services' images (by service name, as
// compose.ServiceImages reads them): the PostgreSQL ones become its
// databases, in name order, and each gets the goose migration folder
// found under the project's folder whose path names it (or the only
// folder, for a project with one database). A project without a
// PostgreSQL service is an error.
func Inspect(composeFile string, images map[string]string) (Plan, error) {
	dir, err := filepath.Abs(filepath.Dir(composeFile))
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Dir: dir, ComposeFile: composeFile}
	var names []string
	for svc, img := range images {
		if IsPostgres(img) {
			names = append(names, svc)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		var all []string
		for svc, img := range images {
			all = append(all, fmt.Sprintf("%s (%s)", svc, img))
		}
		slices.Sort(all)
		return p, fmt.Errorf("%s has no PostgreSQL service (an image of %s): services %s", composeFile, strings.Join(postgresImages, ", "), strings.Join(all, ", "))
	}
	if p.Folders, err = MigrationFolders(dir); err != nil {
		return p, err
	}
	used := map[string]bool{}
	for _, n := range names {
		db := Database{Name: n, Service: n, Image: images[n]}
		for _, f := range p.Folders {
			if !used[f] && pathNames(f, n) {
				db.Migrations, used[f] = f, true
				break
			}
		}
		p.Databases = append(p.Databases, db)
	}
	if len(names) == 1 && p.Databases[0].Migrations == "" && len(p.Folders) == 1 {
		p.Databases[0].Migrations = p.Folders[0]
		used[p.Folders[0]] = true
	}
	for _, db := range p.Databases {
		if db.Migrations == "" {
			p.Notes = append(p.Notes, fmt.Sprintf("%s: no migration folder found for it (goose SQL files whose path names %s); aidb migrate leaves it as it is until aidb.yaml names one (databases.%s.migrations)", db.Name, db.Name, db.Name))
		}
	}
	for _, f := range p.Folders {
		if !used[f] {
			p.Notes = append(p.Notes, fmt.Sprintf("%s holds goose migrations of no database it could tell: name it in aidb.yaml (databases.<name>.migrations: %s)", f, f))
		}
	}
	return p, nil
}

// pathNames says whether folder's path names database n: one of its
// elements is n, or holds it ("db/appdb_migrations").
func pathNames(folder, n string) bool {
	for _, el := range strings.Split(filepath.ToSlash(folder), "/") {
		if strings.Contains(strings.ToLower(el), strings.ToLower(n)) {
			return true
		}
	}
	return false
}

// skipDirs are folders MigrationFolders never walks into.
var skipDirs = []string{"node_modules", "vendor", "backups", "dist", "build", "target"}

// MigrationFolders lists the folders under dir (four levels at most,
// hidden ones and skipDirs left out) that hold goose SQL migrations: a
// .sql file with a "-- +goose Up" line. Relative to dir, sorted.
func MigrationFolders(dir string) ([]string, error) {
	found := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			return nil // an unreadable folder holds nothing we can use
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(d.Name(), ".") || slices.Contains(skipDirs, d.Name()) || strings.Count(filepath.ToSlash(rel), "/") >= 4) {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Ext(path) != ".sql" || found[filepath.Dir(rel)] {
			return nil
		}
		if isGoose(path) {
			found[filepath.Dir(rel)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look for migration folders in %s: %w", dir, err)
	}
	out := make([]string, 0, len(found))
	for f := range found {
		out = append(out, filepath.ToSlash(f))
	}
	slices.Sort(out)
	return out, nil
}

// isGoose says whether the SQL file at path is a goose migration.
func isGoose(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "-- +goose Up") {
			return true
		}
	}
	return false
}

// Config renders the project's aidb.yaml.
func (p Plan) Config() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# aidb's settings for this project, written by aidb init from %s.\n", filepath.Base(p.ComposeFile))
	b.WriteString("# The compose file stays the source of truth for the services; aidb's docs/reference.md\n# (Configuration) says what else this file takes (ready_timeout, retention, repository).\n\n")
	b.WriteString("# Where backups land (AIDB_BACKUP_DIR overrides), relative to this folder.\nbackup_dir: backups\n\n")
	b.WriteString("# The compose services that are databases aidb runs, migrates, backs up and\n# restores; migrations: a folder of goose SQL migrations.\ndatabases:\n")
	for _, db := range p.Databases {
		fmt.Fprintf(&b, "  %s:\n    service: %s\n", yamlKey(db.Name), yamlKey(db.Service))
		if db.Migrations != "" {
			fmt.Fprintf(&b, "    migrations: %s\n", yamlKey(db.Migrations))
		}
	}
	return b.Bytes()
}

// yamlKey writes s as a YAML scalar that reads back as the string s
// (quoted where a plain one would read as something else: yes, 1.0, a:b).
func yamlKey(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// Makefile renders the project's Makefile.ai: the story's targets
// (Workflow) on aidb from PATH, the ai-db-* ones on the first database and
// the ai-memorydb-* ones on the second.
func (p Plan) Makefile() []byte {
	var b bytes.Buffer
	b.WriteString("# Makefile.ai: the database workflow (backup, verify, restore, migrate) on\n")
	fmt.Fprintf(&b, "# this project's PostgreSQL services, written by aidb init from %s.\n", filepath.Base(p.ComposeFile))
	b.WriteString("# Every target is one line calling aidb (on PATH, or AIDB=/path/to/aidb).\n\n")
	b.WriteString("AIDB       ?= aidb\nAIDB_BUILD :=\n")
	var others []string
	for _, db := range p.Databases[min(2, len(p.Databases)):] {
		others = append(others, db.Name)
	}
	b.WriteString("# The story's rulesdb and memorydb: the databases its ai-db-* and\n# ai-memorydb-* targets act on")
	if len(others) > 0 {
		fmt.Fprintf(&b, " (the others, %s, through DB=name)", strings.Join(others, ", "))
	}
	b.WriteString(".\n")
	fmt.Fprintf(&b, "RULESDB    ?= %s\n", p.Databases[0].Name)
	memory := ""
	if len(p.Databases) > 1 {
		memory = p.Databases[1].Name
	}
	fmt.Fprintf(&b, "MEMORYDB   ?= %s\n\n", memory)
	b.WriteString(Workflow)
	return b.Bytes()
}
