package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
)

// The tuned baselines (issue 31): the plain commands given the settings
// aidb gives its own loads, so that a ratio measures the tool and not the
// settings. aidb builds indexes with maintenance_work_mem 256MB and the
// server's parallel maintenance workers, in containers whose /dev/shm is
// 1 GB (dumpformat.BuildSettings, pgtools' throwaway settings); the
// untuned baselines stay, as what users run.

// tunedPGOPTIONS is what a tuned baseline's sessions get: aidb's build
// memory. Parallel maintenance workers stay at the server's default, as in
// aidb's own builds.
const tunedPGOPTIONS = "-c maintenance_work_mem=256MB"

// throwawayFlags are the server settings of aidb's verification
// containers (pgtools.throwawaySettings), for the tuned fresh container.
const throwawayFlags = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 " +
	"-c maintenance_work_mem=256MB -c checkpoint_timeout=30min -c max_wal_size=4GB"

// emptyDatabase makes an empty database name on container c (untimed) and
// returns the function that drops it again.
func (b *bench) emptyDatabase(c, u, name string) (func(), error) {
	_, err := b.shellTimed(fmt.Sprintf("docker exec %s psql -q -U %s -d postgres -c 'DROP DATABASE IF EXISTS %s' -c 'CREATE DATABASE %s'", c, u, name, name))
	return func() {
		_, _ = b.shellTimed(fmt.Sprintf("docker exec %s psql -q -U %s -d postgres -c 'DROP DATABASE IF EXISTS %s'", c, u, name))
	}, err
}

// restoreVsPgRestoreJTuned is restoreVsPgRestoreJ with pg_restore's
// sessions given aidb's build memory.
func (b *bench) restoreVsPgRestoreJTuned() (Measure, error) {
	return b.pgRestoreJ("restore_vs_pg_restore_j_tuned", tunedPGOPTIONS)
}

// pgRestoreJ is aidb's full restore against pg_restore -j <cores> of a
// directory-format dump of the same database (made in the container,
// untimed) into an empty database, its sessions given pgoptions ("": the
// server's settings).
func (b *bench) pgRestoreJ(name, pgoptions string) (Measure, error) {
	file, err := b.fullBackup("memorydb")
	if err != nil {
		return Measure{}, err
	}
	defer b.removeBackups()
	c, u, db := b.container("memorydb")
	jobs := max(2, runtime.NumCPU())
	dir := "/tmp/aidb-bench-dir"
	if _, err := b.shellTimed(fmt.Sprintf("docker exec %s sh -c 'rm -rf %s && pg_dump -U %s -Fd -j %d -f %s %s'", c, dir, u, jobs, dir, db)); err != nil {
		return Measure{}, err
	}
	defer func() { _, _ = b.shellTimed(fmt.Sprintf("docker exec %s rm -rf %s", c, dir)) }()
	env := ""
	if pgoptions != "" {
		env = "-e PGOPTIONS='" + pgoptions + "' "
	}
	pairs := b.slowPairsOf
	if pgoptions != "" {
		pairs = b.pairsOf
	}
	return pairs(name, fmt.Sprintf("docker exec %sc pg_restore -j %d of a directory-format dump (into an empty database)", env, jobs),
		b.aidbRestore(file),
		func() (float64, error) {
			drop, err := b.emptyDatabase(c, u, "bench_empty")
			defer drop()
			if err != nil {
				return 0, err
			}
			return b.shellTimed(fmt.Sprintf("docker exec %s%s pg_restore -U %s -j %d -d bench_empty %s", env, c, u, jobs, dir))
		})
}

// verifyVsTuned is verify against a fresh container with the settings and
// /dev/shm of aidb's throwaway, loaded by psql with its build memory.
func (b *bench) verifyVsTuned() (Measure, error) {
	file, err := b.fullBackup("memorydb")
	if err != nil {
		return Measure{}, err
	}
	defer b.removeBackups()
	return b.pairsOf("verify_vs_tuned", "docker run --shm-size 1g (aidb's throwaway settings) + pg_isready loop + docker exec -i psql < file",
		b.aidbVerify(file),
		func() (float64, error) {
			return b.shellTimed(b.freshContainer("verify-tuned", file, "--shm-size 1g -e TZ=Etc/UTC ", throwawayFlags, tunedPGOPTIONS))
		})
}

// floorDir is where restoreVsFloor keeps its files, in the container.
const floorDir = "/tmp/aidb-bench-floor"

// restoreVsFloor is aidb's full restore against the server's own load with
// nothing in between: the schema, then every table's rows by COPY … FROM a
// file inside the container, then the indexes and constraints, as one
// script in one session with aidb's build memory. The files are written
// first, untimed. It is a floor for one session: aidb's restore loads and
// builds on several, so it may beat it; reported, no target.
func (b *bench) restoreVsFloor() (Measure, error) {
	file, err := b.fullBackup("memorydb")
	if err != nil {
		return Measure{}, err
	}
	defer b.removeBackups()
	c, u, db := b.container("memorydb")
	tables := `SELECT format('COPY %%I.%%I %s %%L;', n.nspname, c.relname, '` + floorDir + `/' || c.oid || '.copy')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 1`
	prepare := strings.Join([]string{
		fmt.Sprintf("rm -rf %[1]s && mkdir -p %[1]s && chmod 777 %[1]s", floorDir),
		fmt.Sprintf("pg_dump -U %s --section=pre-data -f %s/pre.sql %s", u, floorDir, db),
		fmt.Sprintf("pg_dump -U %s --section=post-data -f %s/post.sql %s", u, floorDir, db),
		fmt.Sprintf(`psql -At -U %s -d %s -c "%s" | psql -q -v ON_ERROR_STOP=1 -U %s -d %s`, u, db, fmt.Sprintf(tables, "TO"), u, db),
		fmt.Sprintf(`psql -At -U %s -d %s -c "%s" > %s/copy.sql`, u, db, fmt.Sprintf(tables, "FROM"), floorDir),
	}, " && ")
	if _, err := b.shellTimed(fmt.Sprintf("docker exec %s sh -c '%s'", c, strings.ReplaceAll(prepare, "'", `'\''`))); err != nil {
		return Measure{}, fmt.Errorf("restore_vs_floor: write the files: %w", err)
	}
	defer func() { _, _ = b.shellTimed(fmt.Sprintf("docker exec %s rm -rf %s", c, floorDir)) }()
	want := b.count(c, u, db, "memories")
	return b.pairsOf("restore_vs_floor", "the server alone: pre-data, COPY … FROM files in the container, post-data, one session (aidb's build memory)",
		b.aidbRestore(file),
		func() (float64, error) {
			drop, err := b.emptyDatabase(c, u, "bench_floor")
			defer drop()
			if err != nil {
				return 0, err
			}
			s, err := b.shellTimed(fmt.Sprintf("docker exec -e PGOPTIONS='%s' %s psql -q -v ON_ERROR_STOP=1 -U %s -d bench_floor -f %s/pre.sql -f %s/copy.sql -f %s/post.sql > /dev/null",
				tunedPGOPTIONS, c, u, floorDir, floorDir, floorDir))
			if err != nil {
				return 0, err
			}
			// The floor loaded what the restore loads: the same memories.
			if got := b.count(c, u, "bench_floor", "memories"); got != want || want == "" {
				return 0, fmt.Errorf("restore_vs_floor: the floor's database has %q memories, the source %q", got, want)
			}
			return s, nil
		})
}

// count is the number of rows of table in database db on container c ("" on
// an error).
func (b *bench) count(c, u, db, table string) string {
	out, err := exec.CommandContext(b.ctx, "docker", "exec", c, "psql", "-At", "-U", u, "-d", db, "-c", "SELECT count(*) FROM "+table).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
