package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/adopt"
)

const initLong = `Adopt aidb into the project of this folder: read its compose file (-f,
AIDB_COMPOSE_FILE, else compose.yaml, compose.yml, docker-compose.yaml or
docker-compose.yml here or in the nearest folder above), find its
PostgreSQL services by image (postgres, pgvector, postgis, timescaledb) and
the goose migration folders beside it, and write, beside the compose file:

  aidb.yaml    the databases (each service, with the migration folder whose
               path names it)
  Makefile.ai  the user story's targets on aidb from PATH (AIDB= to name
               another): ai-db-* act on the first database (RULESDB), the
               ai-memorydb-* ones on the second (MEMORYDB), DB=name on any

What it writes is checked first (loaded as aidb will load it): a service
aidb cannot run (no published port, say) is refused, and nothing is
written. An existing aidb.yaml or Makefile.ai is not overwritten without
--force.`

func (a *app) initCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Adopt aidb into this project: write an aidb.yaml and a Makefile.ai for its compose file's PostgreSQL services",
		Long:  initLong,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.initProject(cmd.Context(), force) },
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing aidb.yaml and Makefile.ai")
	return cmd
}

// initProject runs aidb init: the compose file found and inspected
// (adopt.Inspect), aidb.yaml and Makefile.ai written once the aidb.yaml
// loads (adopt.Plan.Write), and what was found said.
func (a *app) initProject(ctx context.Context, force bool) error {
	file, err := a.initComposeFile()
	if err != nil {
		return err
	}
	images, err := compose.ServiceImages(ctx, file, os.Environ())
	if err != nil {
		return err
	}
	plan, err := adopt.Inspect(file, images)
	if err != nil {
		return fault.BadInput(fmt.Errorf("%w; nothing was written", err))
	}
	w, err := plan.Write(force, func(cfg string) error {
		_, err := compose.Load(ctx, compose.Options{ComposeFile: file, ConfigFile: cfg, Env: os.Environ()})
		return err
	})
	if err != nil {
		return err
	}
	return a.printInit(file, w, plan)
}

// initComposeFile is the compose file init adopts: -f, else
// AIDB_COMPOSE_FILE, else the one found here or in a folder above.
func (a *app) initComposeFile() (string, error) {
	file := a.composeFile
	if file == "" {
		file = os.Getenv("AIDB_COMPOSE_FILE")
	}
	if file != "" {
		return file, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if file, err = compose.FindComposeFile(wd); err != nil {
		return "", err
	}
	if file == "" {
		return "", fault.BadInput(fmt.Errorf("no compose file in %s or any folder above it (%s): aidb init adopts a project that has one; pass -f FILE, or run aidb without init on its embedded default (aidb up)", wd, strings.Join(compose.ComposeFileNames, ", ")))
	}
	return file, nil
}

// printInit prints the files init wrote (or the --json document), and
// says what it found in the compose file and what to run next.
func (a *app) printInit(file string, w adopt.Written, plan adopt.Plan) error {
	if a.json {
		return a.printJSON(struct {
			ComposeFile string           `json:"compose_file"`
			Config      string           `json:"config_file"`
			Makefile    string           `json:"makefile"`
			Databases   []adopt.Database `json:"databases"`
			Notes       []string         `json:"notes"`
		}{file, w.Config, w.Makefile, plan.Databases, plan.Notes})
	}
	fmt.Fprintf(a.stdout, "%s\n%s\n", w.Config, w.Makefile)
	a.say("from %s:", file)
	for i, db := range plan.Databases {
		a.say("  %s: service %s, image %s, %s%s", db.Name, db.Service, db.Image, initMigrations(db), initRole(i))
	}
	for _, n := range plan.Notes {
		a.say("note: %s", n)
	}
	a.say("next: make -f Makefile.ai ai-db-up ai-db-migrate ai-db-backup-all (in %s)", plan.Dir)
	return nil
}

// initRole is what the i-th database is to Makefile.ai's targets.
func initRole(i int) string {
	switch i {
	case 0:
		return " (the ai-db-* targets)"
	case 1:
		return " (the ai-memorydb-* targets)"
	}
	return ""
}

// initMigrations names a database's migration folder.
func initMigrations(db adopt.Database) string {
	if db.Migrations != "" {
		return "migrations " + db.Migrations
	}
	return "no migrations"
}
