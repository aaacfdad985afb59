package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgimage"
)

// EnsureImage returns the image to run for ref: ref itself when present or
// pullable; otherwise the local build that stands in for it
// (pgimage.RecipeFor: postgres:15, postgres:17, pgvector/pgvector:pg17),
// built now if it is not there yet, its base image first where it has one.
// It says which image stands in for which. A reference no local build
// stands in for is bad input naming those that have one.
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
	// The pull's error is told (%v), not wrapped, below: what failed in
	// the end is the fallback, and the pull's error in the chain would
	// give that failure the engine's kinds and advice.
	recipe, err := pgimage.RecipeFor(ref)
	if err != nil {
		return "", fault.BadInput(fmt.Errorf("pull %s: %v; and %w", ref, pullErr, err)) //nolint:errorlint // told, not wrapped (above)
	}
	local := recipe.Tag
	if present, err := o.imagePresent(ctx, local); err != nil {
		return "", err
	} else if present {
		if local != ref {
			o.progress(fmt.Sprintf("cannot pull %s; using the local build %s instead", ref, local))
		}
		return local, nil
	}
	o.progress(fmt.Sprintf("cannot pull %s (%v); building %s from Debian's packages instead (a minute or two)", ref, pullErr, local))
	built, err := o.buildLocal(ctx, recipe)
	if err != nil {
		return "", fmt.Errorf("cannot pull %s (%v), and building %s failed: %w", ref, pullErr, local, err) //nolint:errorlint // told, not wrapped (above)
	}
	o.progress(fmt.Sprintf("built %s; it stands in for %s", built, ref))
	return built, nil
}

// buildLocal builds recipe r under its own tag, its base image first when
// that is not there yet (a base shared by two images is built once).
func (o *Orchestrator) buildLocal(ctx context.Context, r pgimage.Recipe) (string, error) {
	if r.Base != nil {
		present, err := o.imagePresent(ctx, r.Base.Tag)
		if err != nil {
			return "", err
		}
		if !present {
			o.progress(fmt.Sprintf("building %s first: %s is %s plus %s", r.Base.Tag, r.Tag, r.Base.Tag, strings.Join(r.Packages, ", ")))
			if _, err := o.buildImage(ctx, *r.Base, ""); err != nil {
				return "", err
			}
		}
	}
	return o.buildImage(ctx, r, "")
}

// Built is one image BuildImages built.
type Built struct {
	// Ref is the image's reference.
	Ref string
	// For is the reference it stands in for when that cannot be pulled
	// ("" for a build under another tag).
	For string
	// BaseOf names the image this one was built as the base of, when it
	// was built only for that.
	BaseOf string
}

// BuildImages builds the local images that stand in for refs
// (pgimage.RecipeFor), replacing earlier builds under their tags; a layered
// image's base is rebuilt first, once however many images share it. Every
// reference is checked before anything is built: one no local build stands
// in for is bad input. With tag, the one image is built under that reference
// instead, leaving the local tags alone (its base is used as it is, or
// built under its own tag when missing). An earlier build is removed once
// replaced, unless a container still uses it. Cancelled, it tags nothing
// more and leaves the earlier builds as they were.
func (o *Orchestrator) BuildImages(ctx context.Context, refs []string, tag string) ([]Built, error) {
	var recipes []pgimage.Recipe
	for _, ref := range refs {
		r, err := pgimage.RecipeFor(ref)
		if err != nil {
			return nil, fault.BadInput(err)
		}
		if !slices.ContainsFunc(recipes, func(x pgimage.Recipe) bool { return x.Tag == r.Tag }) {
			recipes = append(recipes, r)
		}
	}
	if tag != "" && len(recipes) > 1 {
		var tags []string
		for _, r := range recipes {
			tags = append(tags, r.For)
		}
		return nil, fault.BadInput(fmt.Errorf("--tag %s names one image, but the databases need %s: name one database", tag, strings.Join(tags, " and ")))
	}
	var built []Built
	var replaced []string // IDs of earlier builds, in build order
	done := map[string]bool{}
	build := func(r pgimage.Recipe, ref string) error {
		target := ref
		if target == "" {
			target = r.Tag
		}
		old, _ := o.docker.ImageInspect(ctx, target)
		if _, err := o.buildImage(ctx, r, ref); err != nil {
			return err
		}
		done[target] = true
		if old.ID != "" {
			replaced = append(replaced, old.ID)
		}
		return nil
	}
	for _, r := range recipes {
		if done[r.Tag] {
			continue
		}
		if r.Base != nil && !done[r.Base.Tag] {
			present, err := o.imagePresent(ctx, r.Base.Tag)
			if err != nil {
				return built, err
			}
			if tag == "" || !present {
				if err := build(*r.Base, ""); err != nil {
					return built, err
				}
				built = append(built, Built{Ref: r.Base.Tag, For: r.Base.For, BaseOf: r.Tag})
			}
		}
		if err := build(r, tag); err != nil {
			return built, err
		}
		if tag == "" {
			built = append(built, Built{Ref: r.Tag, For: r.For})
		} else {
			built = append(built, Built{Ref: tag})
		}
	}
	// Children before their bases: an image with a child cannot go.
	for i := len(replaced) - 1; i >= 0; i-- {
		id := replaced[i]
		if _, err := o.docker.ImageRemove(ctx, id, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			o.progress(fmt.Sprintf("the previous build %s stays: %v", id, err))
		}
	}
	return built, nil
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
	defer func() { _ = res.Close() }()
	return res.Wait(ctx)
}
