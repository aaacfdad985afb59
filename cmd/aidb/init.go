package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/adopt"
)

func (a *app) initCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Adopt aidb into this project: write an aidb.yaml and a Makefile.ai for its compose file's PostgreSQL services",
		Long: `Adopt aidb into the project of this folder: read its compose file (-f,
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
--force.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			file := a.composeFile
			if file == "" {
				file = os.Getenv("AIDB_COMPOSE_FILE")
			}
			if file == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				if file, err = compose.FindComposeFile(wd); err != nil {
					return err
				}
				if file == "" {
					return fault.BadInput(fmt.Errorf("no compose file in %s or any folder above it (%s): aidb init adopts a project that has one; pass -f FILE, or run aidb without init on its embedded default (aidb up)", wd, strings.Join(compose.ComposeFileNames, ", ")))
				}
			}
			images, err := compose.ServiceImages(cmd.Context(), file, os.Environ())
			if err != nil {
				return err
			}
			plan, err := adopt.Inspect(file, images)
			if err != nil {
				return fault.BadInput(fmt.Errorf("%w; nothing was written", err))
			}
			cfgPath, mkPath := filepath.Join(plan.Dir, "aidb.yaml"), filepath.Join(plan.Dir, "Makefile.ai")
			if !force {
				for _, p := range []string{cfgPath, mkPath} {
					if _, err := os.Lstat(p); err == nil {
						return fault.BadInput(fmt.Errorf("%s exists: aidb init does not overwrite it; pass --force to replace it (and the other file it writes); nothing was written", p))
					}
				}
			}
			// What is written is what aidb will load: load it first.
			tmp, err := os.CreateTemp(plan.Dir, ".aidb.yaml.init-*")
			if err != nil {
				return fmt.Errorf("write into %s: %w", plan.Dir, err)
			}
			defer os.Remove(tmp.Name())
			_, err = tmp.Write(plan.Config())
			if err == nil {
				err = tmp.Chmod(0o644)
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if _, err := compose.Load(cmd.Context(), compose.Options{ComposeFile: file, ConfigFile: tmp.Name(), Env: os.Environ()}); err != nil {
				return fault.BadInput(fmt.Errorf("the aidb.yaml init would write does not load: %w; fix the compose file (or write aidb.yaml by hand); nothing was written", err))
			}
			mk := plan.Makefile()
			if err := writeFile(mkPath, mk); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), cfgPath); err != nil {
				return errors.Join(fmt.Errorf("write %s: %w", cfgPath, err), os.Remove(mkPath))
			}
			if a.json {
				return a.printJSON(struct {
					ComposeFile string           `json:"compose_file"`
					Config      string           `json:"config_file"`
					Makefile    string           `json:"makefile"`
					Databases   []adopt.Database `json:"databases"`
					Notes       []string         `json:"notes"`
				}{file, cfgPath, mkPath, plan.Databases, plan.Notes})
			}
			fmt.Fprintf(a.stdout, "%s\n%s\n", cfgPath, mkPath)
			a.say("from %s:", file)
			for i, db := range plan.Databases {
				role := ""
				switch i {
				case 0:
					role = " (the ai-db-* targets)"
				case 1:
					role = " (the ai-memorydb-* targets)"
				}
				mig := "no migrations"
				if db.Migrations != "" {
					mig = "migrations " + db.Migrations
				}
				a.say("  %s: service %s, image %s, %s%s", db.Name, db.Service, db.Image, mig, role)
			}
			for _, n := range plan.Notes {
				a.say("note: %s", n)
			}
			a.say("next: make -f Makefile.ai ai-db-up ai-db-migrate ai-db-backup-all (in %s)", plan.Dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing aidb.yaml and Makefile.ai")
	return cmd
}

// writeFile writes b to path whole or not at all (a temporary file beside
// it, renamed), readable by all: a Makefile is no secret.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".init-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
