package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/repository"
)

// locateBackup is the backup a repository URL (s3://…) names, read from
// there as a stream, or nil for a file in a folder.
func locateBackup(ctx context.Context, file string) (restore.Object, error) {
	if !repository.IsURL(file) {
		return nil, nil
	}
	return repository.OpenObject(ctx, file)
}

func (a *app) pushCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "push",
		Short: "Upload the backups of the folder that the repository lacks (by sha256; a second push uploads nothing)",
		Long:  pushLong,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.push(cmd.Context()) },
	}
}

func (a *app) pullCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pull s3://BUCKET[/PREFIX]/FILE",
		Short: "Download a backup from the repository into the backup folder, checked against its manifest",
		Long:  pullLong,
		Args:  args(cobra.ExactArgs(1)),
		RunE:  func(cmd *cobra.Command, argv []string) error { return a.pull(cmd.Context(), argv[0]) },
	}
}

const pushLong = `Upload every backup of the backup folder that the repository
(AIDB_REPOSITORY, or repository: in aidb.yaml) does not hold, with its
manifest, and the set manifests whose files are all there. A backup the
repository holds with the same sha256 is not uploaded again; one it holds
under the same name with other bytes is left alone (exit 1). Each file is
streamed in parts and checked against its manifest as it passes; a file that
does not match is not uploaded, and an upload that fails is aborted: the
repository never lists a backup that is not whole.`

// push uploads what the repository lacks, under the folder's lock.
func (a *app) push(ctx context.Context) error {
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	if p.Repository == "" {
		return fault.BadInput(fmt.Errorf("push: no repository: set AIDB_REPOSITORY=s3://BUCKET[/PREFIX] (or repository: in %s)", p.ConfigFile))
	}
	repo, err := repository.ForProject(ctx, p)
	if err != nil {
		return err
	}
	release, err := a.lockFolder(ctx, p.BackupDir, "push")
	if err != nil {
		return err
	}
	defer release()
	res, err := repo.Push(ctx, catalog.Folder{Dir: p.BackupDir}, a.progress)
	for _, s := range res.Skipped {
		a.say("skipped %s: %s", s.File, s.Reason)
	}
	switch {
	case len(res.Uploaded) == 0 && err == nil:
		a.say("nothing to upload: %s holds every backup of %s (%d)", repo.Location(), p.BackupDir, len(res.Present))
	default:
		a.say("uploaded %d backup(s) to %s; %d were there already", len(res.Uploaded), repo.Location(), len(res.Present))
	}
	if a.json && err == nil {
		return a.printJSON(res)
	}
	return err
}

const pullLong = `Download one backup and its manifest from a repository into the backup
folder. The file is written as a partial file, hashed as it arrives, and gets
its final name only when its size and sha256 match the manifest. A file of
that name already in the folder is never replaced: the same bytes are kept
(nothing downloaded), other bytes are refused. Then restore or verify the
file it names.`

// pull downloads one backup from a repository into the folder, under the
// folder's lock.
func (a *app) pull(ctx context.Context, url string) error {
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	u, name, err := repository.ParseObject(url)
	if err != nil {
		return err
	}
	repo, err := repository.Open(ctx, u)
	if err != nil {
		return err
	}
	release, err := a.lockFolder(ctx, p.BackupDir, "pull")
	if err != nil {
		return err
	}
	defer release()
	res, err := repo.Pull(ctx, name, p.BackupDir)
	if err != nil {
		return err
	}
	if res.Downloaded {
		a.say("pulled %s to %s (%s, sha256 checked)", url, res.File, humanBytes(res.Size))
	} else {
		a.say("%s is in the folder already, the same bytes: nothing downloaded", res.File)
	}
	if a.json {
		return a.printJSON(res)
	}
	return nil
}
