package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/store/repository"
)

const pitrPushLong = `Send each database's whole WAL segments and base backups that the repository
lacks to it (make: ai-db-pitr-push): segments compressed (zstd), and, with
AIDB_AGE_RECIPIENTS_FILE, every file but a base backup's record encrypted with
age, under wal/<db>/ and base/<db>/<timestamp>/ of AIDB_REPOSITORY. A base
backup counts there once its record is (it goes last). aidb serve does this
every 10 seconds by itself; nothing in the folder is removed.

pull fetches what the folder lacks back from the repository (a rebuilt
machine); aidb restore --to-time and aidb pitr verify do that first by
themselves.`

// pitrShipCommands are aidb pitr push and pull.
func (a *app) pitrShipCommands() []*cobra.Command {
	push := &cobra.Command{Use: "push [db...]", Short: "Send the WAL segments and base backups the repository lacks to it", Long: pitrPushLong,
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrPush(cmd, args) }}
	pull := &cobra.Command{Use: "pull [db...]", Short: "Fetch the WAL segments and base backups the folder lacks from the repository", Long: pitrPushLong,
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrPull(cmd, args) }}
	return []*cobra.Command{push, pull}
}

// pitrRepository opens the project's repository, which push and pull need.
func pitrRepository(ctx context.Context, p *compose.Project) (*repository.Repository, error) {
	repo, err := repository.ForProject(ctx, p)
	if err == nil && repo == nil {
		err = fault.BadInput(errors.New("no repository is set: set AIDB_REPOSITORY=s3://BUCKET/PREFIX (or repository: in aidb.yaml)"))
	}
	return repo, err
}

func (a *app) pitrPush(cmd *cobra.Command, args []string) error {
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	repo, err := pitrRepository(cmd.Context(), s.project)
	if err != nil {
		return err
	}
	recipients, err := ageRecipients(s.project)
	if err != nil {
		return err
	}
	var seal pitr.Sealer
	if recipients != nil {
		seal = recipients
	}
	shipped, err := routine.ShipStreams(cmd.Context(), s.dbs, s.project.BackupDir, repo, seal)
	for _, x := range shipped {
		a.say("%s: %d WAL segment(s) and %d base backup(s) sent to %s", x.Database, len(x.Segments), len(x.Bases), x.Location)
	}
	if err != nil {
		return err
	}
	return a.printPITRJSON(map[string]any{"shipped": shipped})
}

func (a *app) pitrPull(cmd *cobra.Command, args []string) error {
	s, err := a.openLocked(cmd.Context(), args, "pitr pull", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	repo, err := pitrRepository(cmd.Context(), s.project)
	if err != nil {
		return err
	}
	off, err := a.offsite(s.project, repo)
	if err != nil {
		return err
	}
	out := []pitr.Fetched{}
	for _, db := range s.dbs {
		got, err := pitr.Fetch(cmd.Context(), s.eng, pitr.FetchRequest{DB: db, BackupDir: s.project.BackupDir, Remote: repo, Keys: off.Keys, Progress: a.progress})
		if err != nil {
			return err
		}
		a.say("%s: %d base backup(s) and %d WAL segment(s) fetched from %s", db.Name, len(got.Bases), len(got.Segments), got.Location)
		out = append(out, got)
	}
	return a.printPITRJSON(map[string]any{"fetched": out})
}

// offsite is what a restore or verify to a time fetches from first: the
// repository (nil: none) with the identities that open what is sealed.
func (a *app) offsite(p *compose.Project, repo *repository.Repository) (pitr.Offsite, error) {
	if repo == nil {
		return pitr.Offsite{}, nil
	}
	keys, err := ageKeys(p)
	if err != nil {
		return pitr.Offsite{}, err
	}
	off := pitr.Offsite{Remote: repo}
	if keys != nil {
		off.Keys = keys
	}
	return off, nil
}

// projectOffsite opens the project's repository for a restore or verify
// to a time; one that does not answer is said, and the folder alone used.
func (a *app) projectOffsite(ctx context.Context, p *compose.Project) (pitr.Offsite, error) {
	repo, err := repository.ForProject(ctx, p)
	if err != nil {
		a.say("the repository %s did not answer (%v): using the backup folder's WAL alone", p.Repository, err)
		return pitr.Offsite{}, nil
	}
	return a.offsite(p, repo)
}
