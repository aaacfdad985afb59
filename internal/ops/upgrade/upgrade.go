// Package upgrade moves a database to another PostgreSQL major by backup,
// restore and verification on a new volume, then switches the database to
// it (aidb upgrade); it keeps the old container and volume until the
// upgrade is finished (removed) or rolled back (switched back, after a
// safety backup of what the new major holds). All or nothing: until the
// switch, the database runs on as it was, and a switch that fails puts the
// old container back.
//
// The upgrade is remembered in labels on the new container and volume
// (orchestrator.Upgrade), read again by every later command.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/postgres/pgimage"
	"github.com/aidb/aidb/orchestrator"
)

// Switcher is what an upgrade asks of the databases' lifecycle
// (*orchestrator.Orchestrator satisfies it).
type Switcher interface {
	// EnsureImage makes ref present (pulled, or built locally).
	EnsureImage(ctx context.Context, ref string) (string, error)
	UpgradeState(ctx context.Context, db compose.Database) (orchestrator.UpgradeState, error)
	CreateUpgradeVolume(ctx context.Context, db compose.Database, u orchestrator.Upgrade) error
	RemoveVolume(ctx context.Context, name string) error
	SwitchMajor(ctx context.Context, db compose.Database, u orchestrator.Upgrade) error
	SwitchBack(ctx context.Context, db compose.Database) ([]string, error)
	RemovePrevious(ctx context.Context, db compose.Database) ([]string, error)
}

// Stage is a server of the new major on the new volume, before the switch.
type Stage interface {
	// Restore restores the backup file into it and compares it with the
	// file's manifest (a difference is a restore.DifferenceError).
	Restore(ctx context.Context, file string) (restore.Result, error)
	// Stop shuts it down cleanly; Close removes its container (never the
	// volume).
	Stop(ctx context.Context) error
	Close(ctx context.Context) error
}

// Request is one upgrade.
type Request struct {
	DB compose.Database
	// Image is the reference to move to (postgres:17).
	Image string
	// ComposeFile names the compose file, for the line to change in it
	// (compose.DefaultComposeName for the embedded default).
	ComposeFile string
	// Backup takes a full backup of the database as it runs and returns
	// its file. Required.
	Backup func(ctx context.Context) (string, error)
	// Stage starts a server of image on volume (mounted at target) with
	// db's credentials. Required.
	Stage func(ctx context.Context, image string, db compose.Database, volume, target string) (Stage, error)
	// Unchanged, if set, checks just before the switch that the database
	// still holds what the backup file holds (see Unchanged): what was
	// written after the backup would not be on the new major.
	Unchanged func(ctx context.Context, file string) error
	// Progress, if set, is told each step.
	Progress func(string)
}

// Result is a finished upgrade.
type Result struct {
	Database string `json:"database"`
	// From and To are the majors; Image the reference it runs now.
	From   string `json:"from"`
	To     string `json:"to"`
	Image  string `json:"image"`
	Backup string `json:"backup"`
	// Volume holds the upgraded data; Previous and PreviousVolume are
	// kept until --finish or --rollback.
	Volume         string `json:"volume"`
	Previous       string `json:"previous"`
	PreviousVolume string `json:"previous_volume"`
	Tables         int    `json:"tables"`
	Rows           int64  `json:"rows"`
	// ComposeChange says what to change in the compose file (aidb does
	// not edit it).
	ComposeChange string `json:"compose_change"`
}

func (r Request) progress(format string, args ...any) {
	if r.Progress != nil {
		r.Progress(fmt.Sprintf(format, args...))
	}
}

// Run upgrades req.DB to req.Image: checks (the database runs, no upgrade
// waits to be finished, the image names a newer major, the new volume's
// name is free; refusals change nothing), the new volume, a full backup, a
// server of the new major on the volume, the restore of the backup there compared with its manifest, then
// the switch. Any failure before the switch removes what it made (the
// volume, the staging container) and leaves the database running as it
// was; a failed switch puts the old container back.
func Run(ctx context.Context, e Switcher, req Request) (res Result, retErr error) {
	db := req.DB
	st, err := e.UpgradeState(ctx, db)
	if err != nil {
		return res, err
	}
	u, err := plan(db, st, req.Image)
	if err != nil {
		return res, err
	}
	res = Result{Database: db.Name, From: st.DataMajor, Image: req.Image, Volume: u.Volume, PreviousVolume: u.Replaces}
	res.To, _ = orchestrator.ImageMajor(req.Image)

	// The image first: one that cannot be had (postgres:99, a registry
	// out of reach with no local build) is refused before the backup,
	// the volume or anything else is made.
	req.progress("%s: making %s available", db.Name, req.Image)
	if _, err := e.EnsureImage(ctx, req.Image); err != nil {
		return res, fmt.Errorf("get the image %s for %s's upgrade (nothing was backed up or changed): %w", req.Image, db.Name, err)
	}
	if err := e.CreateUpgradeVolume(ctx, db, u); err != nil {
		return res, err
	}
	switched := false
	defer func() {
		if retErr == nil || switched {
			return
		}
		if err := e.RemoveVolume(context.WithoutCancel(ctx), u.Volume); err != nil {
			retErr = errors.Join(retErr, err)
			return
		}
		retErr = fmt.Errorf("%w; %s runs on PostgreSQL %s as before (volume %s was removed again)", retErr, db.Name, st.DataMajor, u.Volume)
	}()

	req.progress("%s: backing up PostgreSQL %s's data", db.Name, st.DataMajor)
	if res.Backup, err = req.Backup(ctx); err != nil {
		return res, fmt.Errorf("back up %s before its upgrade: %w", db.Name, err)
	}

	req.progress("%s: starting %s on the new volume %s", db.Name, req.Image, u.Volume)
	stage, err := req.Stage(ctx, req.Image, db, u.Volume, db.DataMount)
	if err != nil {
		return res, fmt.Errorf("start %s on volume %s: %w", req.Image, u.Volume, err)
	}
	req.progress("%s: restoring %s on PostgreSQL %s and comparing it with its manifest", db.Name, res.Backup, res.To)
	r, err := stage.Restore(ctx, res.Backup)
	if err != nil {
		return res, errors.Join(fmt.Errorf("restore %s on %s: %w", res.Backup, req.Image, err), stage.Close(ctx))
	}
	if !r.Verified {
		return res, errors.Join(fmt.Errorf("restore %s on %s: not verified against a manifest", res.Backup, req.Image), stage.Close(ctx))
	}
	res.Tables, res.Rows = r.Tables, r.Rows
	if err := errors.Join(stage.Stop(ctx), stage.Close(ctx)); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if req.Unchanged != nil {
		req.progress("%s: checking that nothing was written to PostgreSQL %s since the backup", db.Name, st.DataMajor)
		if err := req.Unchanged(ctx, res.Backup); err != nil {
			return res, err
		}
	}
	req.progress("%s: restored and equal (%d tables, %d rows); switching to PostgreSQL %s", db.Name, r.Tables, r.Rows, res.To)
	if err := e.SwitchMajor(ctx, db, u); err != nil {
		return res, err
	}
	switched = true
	after, err := e.UpgradeState(context.WithoutCancel(ctx), db)
	if err == nil {
		res.Previous = after.Previous
	}
	res.ComposeChange = ComposeChange(db, req.Image, req.ComposeFile)
	return res, nil
}

// plan checks an upgrade of db, found in st, to image, and says what it
// will make: a refusal is bad input (or the database not running) and
// changes nothing.
func plan(db compose.Database, st orchestrator.UpgradeState, image string) (orchestrator.Upgrade, error) {
	switch {
	case st.Container == "":
		return orchestrator.Upgrade{}, fault.New(fault.NotRunning, fmt.Errorf("%s has no container to upgrade: bring it up on its current image first (aidb up %s)", db.Name, db.Name))
	case !st.Running:
		return orchestrator.Upgrade{}, fault.New(fault.NotRunning, fmt.Errorf("%s is not running: the upgrade backs up the database as it runs; start it with aidb up %s", db.Name, db.Name))
	case st.Previous != "":
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("%s's last upgrade is not finished (container %s is kept): run aidb upgrade %s --finish to remove the old container and volume, or --rollback to go back, first; nothing was changed", db.Name, st.Previous, db.Name))
	case st.ComposeVolume == "":
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("%s keeps its data in no named volume: aidb upgrade restores into a new named volume beside the old one; nothing was changed", db.Name))
	}
	if !postgresImage(image) {
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("--image %s does not name a PostgreSQL image: aidb upgrade takes one whose name says postgres or pg and whose tag names the major (aidb builds %s where they cannot be pulled); nothing was changed",
			image, strings.Join(knownImages(), ", ")))
	}
	want, err := orchestrator.ImageMajor(image)
	if err != nil {
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("--image: %w", err))
	}
	w, _ := strconv.Atoi(want)
	have, err := strconv.Atoi(st.DataMajor)
	if err != nil {
		return orchestrator.Upgrade{}, fmt.Errorf("%s: cannot tell the PostgreSQL major of its data (PG_VERSION %q)", db.Name, st.DataMajor)
	}
	switch {
	case w == have:
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("%s already holds PostgreSQL %d data: %s is no upgrade; nothing was changed", db.Name, have, image))
	case w < have:
		return orchestrator.Upgrade{}, fault.BadInput(fmt.Errorf("%s holds PostgreSQL %d data and %s runs %d: aidb upgrade moves to a newer major only (to go back after an upgrade, aidb upgrade %s --rollback); nothing was changed", db.Name, have, image, w, db.Name))
	}
	return orchestrator.Upgrade{
		Image:         image,
		FromImage:     db.Image,
		Volume:        st.ComposeVolume + "-pg" + want,
		ComposeVolume: st.ComposeVolume,
		Replaces:      st.Volume,
	}, nil
}

// ComposeChange says what to change in the compose file so that it names
// the image db runs since its upgrade: the variable to set in .env where
// the file takes the image from one, else the line to write.
func ComposeChange(db compose.Database, image, composeFile string) string {
	switch {
	case db.Image == image:
		return fmt.Sprintf("the compose file names %s for %s already: nothing to change there", image, db.Service)
	case len(db.ImageVars) > 0:
		return fmt.Sprintf("the compose file takes %s's image from %s: set %s in .env so that it reads %s (aidb does not edit your files; until then aidb runs %s for %s by its upgrade)",
			db.Service, strings.Join(db.ImageVars, ", "), strings.Join(db.ImageVars, ", "), image, image, db.Name)
	case composeFile == "" || composeFile == compose.DefaultComposeName:
		return fmt.Sprintf("the embedded default compose file names %s for %s: aidb runs %s for it by its upgrade; to write it down, use a compose file of your own (-f or AIDB_COMPOSE_FILE) with image: %s", db.Image, db.Service, image, image)
	}
	return fmt.Sprintf("in %s, change service %s's line image: %s to image: %s (aidb does not edit your files; until then aidb runs %s for %s by its upgrade)", composeFile, db.Service, db.Image, image, image, db.Name)
}

// RollbackRequest is one rollback.
type RollbackRequest struct {
	DB compose.Database
	// SafetyBackup backs up what the upgraded database holds (what was
	// written on the new major since) and returns its file ("" when it
	// holds no data). Required.
	SafetyBackup func(ctx context.Context) (string, error)
	Progress     func(string)
}

// RollbackResult is a finished rollback.
type RollbackResult struct {
	Database     string   `json:"database"`
	SafetyBackup string   `json:"safety_backup"`
	Container    string   `json:"container"`
	Removed      []string `json:"removed"`
}

// Rollback switches db back to the container and volume it was upgraded
// from, after a safety backup of the upgraded database, and removes the
// upgraded container and volume. A failed safety backup changes nothing;
// a previous container that does not come up leaves the upgraded one
// running.
func Rollback(ctx context.Context, e Switcher, req RollbackRequest) (RollbackResult, error) {
	db := req.DB
	res := RollbackResult{Database: db.Name, Removed: []string{}}
	st, err := e.UpgradeState(ctx, db)
	if err != nil {
		return res, err
	}
	if st.Upgrade == nil || st.Previous == "" {
		return res, fault.BadInput(fmt.Errorf("%s has no upgrade to roll back (no container it was upgraded from is kept); nothing was changed", db.Name))
	}
	if req.Progress != nil {
		req.Progress(fmt.Sprintf("%s: backing up what PostgreSQL %s holds before going back", db.Name, st.DataMajor))
	}
	if res.SafetyBackup, err = req.SafetyBackup(ctx); err != nil {
		return res, fmt.Errorf("safety backup of %s before the rollback: %w; nothing was changed", db.Name, err)
	}
	if res.Removed, err = e.SwitchBack(ctx, db); err != nil {
		return res, err
	}
	res.Container = st.Container
	return res, nil
}

// Finish removes the container and volume db was upgraded from, and
// nothing else.
func Finish(ctx context.Context, e Switcher, db compose.Database) ([]string, error) {
	st, err := e.UpgradeState(ctx, db)
	if err != nil {
		return nil, err
	}
	if st.Upgrade == nil || st.Previous == "" {
		return nil, fault.BadInput(fmt.Errorf("%s has no upgrade waiting to be finished (no container it was upgraded from is kept); nothing was changed", db.Name))
	}
	return e.RemovePrevious(ctx, db)
}

// postgresImage says whether ref names a PostgreSQL image by its
// repository: one aidb builds a stand-in for, or one whose name says
// postgres or pg (postgres:17, pgvector/pgvector:pg17,
// timescale/timescaledb:2.17.2-pg17, bitnami/postgresql:17). A tag alone
// cannot tell PostgreSQL 8 from mysql:8.
func postgresImage(ref string) bool {
	for _, r := range pgimage.Recipes() {
		if ref == r.For || ref == r.Tag {
			return true
		}
	}
	name := strings.ToLower(ref)
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	name = name[strings.LastIndex(name, "/")+1:]
	return strings.Contains(name, "postgres") || strings.Contains(name, "pg") || strings.Contains(ref, "-pg") || strings.Contains(ref, ":pg")
}

// knownImages are the references aidb builds stand-ins for.
func knownImages() []string {
	var out []string
	for _, r := range pgimage.Recipes() {
		out = append(out, r.For)
	}
	return out
}
