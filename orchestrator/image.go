package orchestrator

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/pgimage"
)

// EnsureImage returns the image to run for ref: ref itself when present or
// pullable; otherwise a local build of the same PostgreSQL major
// (pgimage.Tag), built now if it is not there yet. It says which image stands
// in for which.
func (o *Orchestrator) EnsureImage(ctx context.Context, ref string) (string, error) {
	if present, err := o.imagePresent(ctx, ref); err != nil || present {
		return ref, err
	}
	o.progress(fmt.Sprintf("pulling %s", ref))
	pullErr := o.pull(ctx, ref)
	if pullErr == nil {
		return ref, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	major, err := ImageMajor(ref)
	if err != nil {
		return "", fault.BadInput(fmt.Errorf("pull %s: %v; and %w", ref, pullErr, err))
	}
	local := pgimage.Tag(major)
	if present, err := o.imagePresent(ctx, local); err != nil {
		return "", err
	} else if present {
		o.progress(fmt.Sprintf("cannot pull %s; using the local build %s instead", ref, local))
		return local, nil
	}
	o.progress(fmt.Sprintf("cannot pull %s (%v); building %s from Debian's packages instead (about a minute or two)", ref, pullErr, local))
	built, err := o.buildImage(ctx, major, "")
	if err != nil {
		return "", fmt.Errorf("cannot pull %s (%v), and building %s failed: %w", ref, pullErr, local, err)
	}
	o.progress(fmt.Sprintf("built %s; it stands in for %s", built, ref))
	return built, nil
}

// BuildImage builds the local PostgreSQL image of the given major version,
// tagged ref (empty: pgimage.Tag(major), the image aidb runs when it cannot
// pull), replacing an earlier build under that reference, and returns the
// reference. The earlier build is removed unless a container still uses it.
// Cancelled, it tags nothing and leaves the earlier build as it was.
func (o *Orchestrator) BuildImage(ctx context.Context, major, ref string) (string, error) {
	if ref == "" {
		ref = pgimage.Tag(major)
	}
	old, err := o.docker.ImageInspect(ctx, ref)
	ref, buildErr := o.buildImage(ctx, major, ref)
	if buildErr != nil || err != nil || old.ID == "" {
		return ref, buildErr
	}
	if now, err := o.docker.ImageInspect(ctx, ref); err == nil && now.ID != old.ID {
		if _, err := o.docker.ImageRemove(ctx, old.ID, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			o.progress(fmt.Sprintf("the previous build %s stays: %v", old.ID, err))
		}
	}
	return ref, nil
}

func (o *Orchestrator) imagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := o.docker.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("inspect image %s: %w", ref, err)
}

func (o *Orchestrator) pull(ctx context.Context, ref string) error {
	res, err := o.docker.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer res.Close()
	return res.Wait(ctx)
}
