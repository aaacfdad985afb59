package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/safety"
	"github.com/aidb/aidb/internal/ops/snapshot"
	"github.com/aidb/aidb/internal/ops/upgrade"
	"github.com/aidb/aidb/orchestrator"
)

// upOptions are up's flags (--profile sets app.profiles).
type upOptions struct {
	timeout time.Duration
	all     bool
}

func (a *app) upCommand() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up [db...]",
		Short: "Bring the databases up and ready (image, network, volume, container, SELECT 1)",
		RunE:  func(cmd *cobra.Command, args []string) error { return a.up(cmd, args, o) },
	}
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "how long to wait for each database to answer SELECT 1, or a dependency to meet its condition (default: ready_timeout in aidb.yaml, 60s)")
	cmd.Flags().BoolVar(&o.all, "all", false, "every service of the compose file (API, frontend, ...): the databases, then the others through Docker Compose's engine, as docker compose up -d would")
	cmd.Flags().StringSliceVar(&a.profiles, "profile", nil, "with --all: enable the services of this compose profile (repeat, or separate with commas; default: COMPOSE_PROFILES)")
	return cmd
}

// up brings the named databases (with --all, every service) up and
// ready; with --json it prints their status.
func (a *app) up(cmd *cobra.Command, args []string, o *upOptions) error {
	if len(a.profiles) > 0 && !o.all {
		return fault.BadInput(fmt.Errorf("--profile selects services that are not databases; give it with --all (aidb up --all --profile %s)", a.profiles[0]))
	}
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	if o.timeout != 0 {
		if o.timeout < 0 {
			return fault.BadInput(fmt.Errorf("--timeout %s: must be positive", o.timeout))
		}
		s.project.ReadyTimeout = o.timeout
	}
	if o.all {
		if len(args) > 0 {
			return fault.BadInput(fmt.Errorf("--all brings up every service; name no databases with it"))
		}
		err = s.orch.UpAll(cmd.Context())
	} else {
		err = s.orch.Up(cmd.Context(), s.dbs)
	}
	if err != nil {
		return err
	}
	if a.json {
		return a.printStatus(cmd, s, s.dbs)
	}
	return nil
}

func (a *app) downCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "down [db...]",
		Short: "Stop the databases, keeping their containers and volumes (data)",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), args)
			if err != nil {
				return err
			}
			defer func() { _ = s.Close() }()
			if all {
				return s.orch.DownAll(cmd.Context())
			}
			return s.orch.Down(cmd.Context(), s.dbs)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every service of the project, whatever its profiles (through Docker Compose's engine), then the databases")
	return cmd
}

// nukeOptions are nuke's flags.
type nukeOptions struct {
	noBackup, allVolumes bool
}

func (a *app) nukeCommand() *cobra.Command {
	o := &nukeOptions{}
	cmd := &cobra.Command{
		Use:   "nuke [db...]",
		Short: "Remove the databases' containers and volumes (all their data) after a safety backup, and the project network",
		RunE:  func(cmd *cobra.Command, args []string) error { return a.nuke(cmd, args, o) },
	}
	cmd.Flags().BoolVar(&o.noBackup, "no-backup", false, "skip the safety backup of databases that hold data")
	cmd.Flags().BoolVar(&o.allVolumes, "all-volumes", false, "also remove the project's volumes that hold none of the nuked databases (other services', or a database's this configuration no longer names): aidb backs none of them up")
	return cmd
}

// nuke asks, takes a safety backup (unless --no-backup), then removes the
// named databases' containers and volumes (none named: the project's
// network too) and says what it removed.
func (a *app) nuke(cmd *cobra.Command, args []string, o *nukeOptions) error {
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	names := make([]string, len(s.dbs))
	for i, db := range s.dbs {
		names[i] = db.Name
	}
	if err := a.confirm(fmt.Sprintf("remove %s of project %s with all their data", strings.Join(names, " and "), s.project.Name)); err != nil {
		return err
	}
	// Asked before any lock is waited for.
	if err := s.lock(cmd.Context(), a, "nuke", false); err != nil {
		return err
	}
	var safety []backup.File
	if !o.noBackup {
		why := manifest.Safety{Command: "aidb nuke", Reason: "the data before aidb nuke removed the containers and volumes of " + strings.Join(names, " and ")}
		if safety, err = a.safetyBackup(cmd, s, s.dbs, true, why); err != nil {
			return fmt.Errorf("%w\nnothing was removed; fix that, or nuke without a safety backup with --no-backup", err)
		}
	}
	copies := countCopies(cmd.Context(), s, s.dbs)
	rm, err := s.orch.Nuke(cmd.Context(), s.dbs, len(args) == 0, o.allVolumes)
	return a.printNuked(s, rm, safety, copies, err)
}

// printNuked says what nuke removed and kept (or prints the --json
// document, even after a failure); err is the nuke's own error, returned
// unless it is nil and printing fails.
func (a *app) printNuked(s *session, rm orchestrator.Removed, safety []backup.File, copies []removedCopies, err error) error {
	for _, w := range rm.WALStreams {
		a.say("removed WAL stream %s (point-in-time recovery); its segments and base backups stay in the backup folder", w)
	}
	if a.json {
		if jerr := a.printJSON(struct {
			orchestrator.Removed
			SafetyBackups []backup.File   `json:"safety_backups"`
			Snapshots     []removedCopies `json:"snapshots_removed"`
		}{rm, safety, copies}); jerr != nil && err == nil {
			err = jerr
		}
		return err
	}
	a.say("removed %d container(s), %d volume(s), %d network(s) of project %s", len(rm.Containers), len(rm.Volumes), len(rm.Networks), s.project.Name)
	a.sayCopiesRemoved(copies)
	for _, k := range rm.Kept {
		a.say("kept volume %s: %s; remove it with docker volume rm %s, or nuke with --all-volumes", k.Name, k.Reason, k.Name)
	}
	return err
}

// safetyBackup takes a full backup of each database that exists and holds
// data (safety.Take), showing its progress, and says where it is. With
// lockFolder it takes the backup folder's lock for the backup (callers
// that hold it already pass false).
func (a *app) safetyBackup(cmd *cobra.Command, s *session, dbs []compose.Database, lockFolder bool, why manifest.Safety) ([]backup.File, error) {
	req := safety.Request{
		Databases: dbs, Why: why,
		Backup: func(_ context.Context, req backup.Request) (backup.Result, error) { return a.runBackup(cmd, s, req) },
		NoData: func(db string) { a.say("%s: holds no tables; no safety backup needed", db) },
	}
	if lockFolder {
		req.Lock = func(ctx context.Context) (func(), error) {
			return a.lock(ctx, s, nil, strings.TrimPrefix(why.Command, "aidb "), true)
		}
	}
	files, err := safety.Take(cmd.Context(), s.orch, req)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		a.say("%s: safety backup in %s", f.Database, f.Path)
	}
	return files, nil
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status [db...]",
		Short: "Show each database's container, state, readiness and URL",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), args)
			if err != nil {
				return err
			}
			defer func() { _ = s.Close() }()
			dbs := s.dbs
			return a.printStatus(cmd, s, dbs)
		},
	}
}

func (a *app) printStatus(cmd *cobra.Command, s *session, dbs []compose.Database) error {
	st, err := s.orch.Status(cmd.Context(), dbs)
	if err != nil {
		return err
	}
	services, err := s.orch.ServicesStatus(cmd.Context())
	if err != nil {
		return err
	}
	snaps := snapshotCounts(cmd.Context(), s, dbs, st)
	pitrs, err := pitrStatuses(cmd.Context(), s)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			ComposeFile string                       `json:"compose_file"`
			ConfigFile  string                       `json:"config_file"`
			Databases   []orchestrator.Status        `json:"databases"`
			Services    []orchestrator.ServiceStatus `json:"services"`
			Snapshots   []snapshot.Counts            `json:"snapshots"`
			PITR        []pitr.Status                `json:"pitr"`
		}{s.project.ComposeFile, s.project.ConfigFile, st, services, snaps, pitrs})
	}
	fmt.Fprintf(a.stderr, "project %s: compose file %s, aidb config %s\n", s.project.Name, s.project.ComposeFile, s.project.ConfigFile)
	if err := a.statusTable(st, services); err != nil {
		return err
	}
	for _, n := range upgradeNotes(s, dbs, st) {
		fmt.Fprintln(a.stderr, n)
	}
	a.saySnapshotCounts(snaps)
	for _, p := range pitrs {
		fmt.Fprintln(a.stderr, p)
	}
	return nil
}

// statusTable prints the databases' and the other services' status as
// a table.
func (a *app) statusTable(st []orchestrator.Status, services []orchestrator.ServiceStatus) error {
	w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DATABASE\tSTATE\tREADY\tCONTAINER\tIMAGE\tPORT\tURL")
	for _, x := range st {
		fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%s\t%d\t%s\n", x.Name, x.State, x.Ready, x.Container, x.Image, x.Port, orchestrator.RedactURL(x.URL))
	}
	if len(services) > 0 {
		fmt.Fprintln(w, "\nSERVICE\tSTATE\tHEALTH\tCONTAINER\tIMAGE\t\t")
		for _, x := range services {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\t\n", x.Service, x.State, x.Health, x.Container, x.Image)
		}
	}
	return w.Flush()
}

// upgradeNotes are status's notes on upgraded databases: a compose file
// that still names the old image, an old container and volume kept.
func upgradeNotes(s *session, dbs []compose.Database, st []orchestrator.Status) []string {
	var notes []string
	for i, x := range st {
		if x.Upgrade == nil {
			continue
		}
		if x.Upgrade.ComposeBehind {
			notes = append(notes, fmt.Sprintf("%s runs %s since aidb upgrade, but the compose file names %s: %s", x.Name, x.Upgrade.Image, x.Upgrade.ComposeImage,
				upgrade.ComposeChange(dbs[i], x.Upgrade.Image, s.project.ComposeFile)))
		}
		if x.Upgrade.Previous != "" {
			notes = append(notes, fmt.Sprintf("%s: the container it was upgraded from, %s, and its volume %s are kept, stopped: aidb upgrade %s --finish removes them, --rollback switches back", x.Name, x.Upgrade.Previous, x.Upgrade.PreviousVolume, x.Name))
		}
	}
	return notes
}

const imageBuildLong = `Build the images the databases' compose images stand for, locally from
Debian's packages (needs root and debootstrap), the images aidb runs in
place of those it cannot pull:

  postgres:15             aidb.local/postgres:15   Debian 12, postgresql-15
  postgres:17             aidb.local/postgres:17   Debian 13, postgresql-17
  pgvector/pgvector:pg17  aidb.local/pgvector:pg17 aidb.local/postgres:17 plus
                                                   postgresql-17-pgvector

Each base image is a debootstrap imported into the engine; pgvector's is
one layer on postgres:17's (rebuilt first, once). Earlier builds are replaced.

--missing makes only what is not there yet, as up would (a pull first, then
the build), to prepare a machine ahead of up or of a test run.

--tag builds under another reference instead, leaving aidb.local/… alone (to
try a build, or for tests). Ctrl-C stops debootstrap and all it started,
removes its folder, and tags nothing.`

func (a *app) imageCommand() *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Manage the PostgreSQL images aidb runs"}
	var tag string
	var missing bool
	build := &cobra.Command{
		Use:   "build [db...]",
		Short: "Build the databases' PostgreSQL images locally from Debian's packages (needs root and debootstrap)",
		Long:  imageBuildLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			if missing {
				return a.ensureImages(cmd.Context(), args, tag)
			}
			return a.buildImages(cmd.Context(), args, tag)
		},
	}
	build.Flags().StringVar(&tag, "tag", "", "tag the build with this image reference instead of its aidb.local/… tag")
	build.Flags().BoolVar(&missing, "missing", false, "make only the images that are not there yet, as up would (a pull first, then the local build); leave those present as they are")
	img.AddCommand(build)
	return img
}

// buildImages builds the named databases' images (tag: under that
// reference instead) and says what each stands in for.
func (a *app) buildImages(ctx context.Context, names []string, tag string) error {
	if tag != "" {
		if _, err := reference.ParseNormalizedNamed(tag); err != nil {
			return fault.BadInput(fmt.Errorf("--tag %s: %w", tag, err))
		}
	}
	s, err := a.open(ctx, names)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	var refs []string
	for _, db := range s.dbs {
		refs = append(refs, db.Image)
	}
	images, err := s.orch.BuildImages(ctx, refs, tag)
	built := a.sayBuilt(images)
	if err != nil {
		return err
	}
	return a.printImages(built)
}

// printImages prints the images a command made or found, sorted, with
// --json (nothing otherwise: they were said as they came).
func (a *app) printImages(refs []string) error {
	if !a.json {
		return nil
	}
	slices.Sort(refs)
	return a.printJSON(struct {
		Images []string `json:"images"`
	}{refs})
}

// ensureImages makes the named databases' images present as up would
// (pulled, or built where no pull works), leaving present ones alone: a
// machine prepared ahead of up, or of a test run.
func (a *app) ensureImages(ctx context.Context, names []string, tag string) error {
	if tag != "" {
		return fault.BadInput(errors.New("--missing makes the images up runs, under their own references; --tag builds one under another: use one of them"))
	}
	s, err := a.open(ctx, names)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	var ready []string
	for _, db := range s.dbs {
		ref, err := s.orch.EnsureImage(ctx, db.Image)
		if err != nil {
			return err
		}
		a.say("%s: %s is there", db.Name, ref)
		if !slices.Contains(ready, ref) {
			ready = append(ready, ref)
		}
	}
	return a.printImages(ready)
}

// sayBuilt says what each built image stands in for, and returns their
// references.
func (a *app) sayBuilt(images []orchestrator.Built) []string {
	var built []string
	for _, b := range images {
		built = append(built, b.Ref)
		switch {
		case b.BaseOf != "":
			a.say("built %s (stands in for %s when it cannot be pulled; the base of %s)", b.Ref, b.For, b.BaseOf)
		case b.For != "":
			a.say("built %s (stands in for %s when it cannot be pulled)", b.Ref, b.For)
		default:
			a.say("built %s", b.Ref)
		}
	}
	return built
}
