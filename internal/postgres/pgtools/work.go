package pgtools

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/orchestrator"
)

// WorkContainer is a helper or throwaway container of the project: one that
// lives only as long as the command that started it.
type WorkContainer struct {
	ID      string
	Name    string
	Role    string
	Service string
	// Owner is its aidb.owner label: the aidb process that started it (see
	// package owner); "" for one an aidb older than the label started.
	Owner string
	// State is the engine's word for it: running, exited, created, ...
	State string
}

// WorkContainers lists the project's helper and throwaway containers
// (roles dump, load and verify), running or not.
func (r *Runner) WorkContainers(ctx context.Context) ([]WorkContainer, error) {
	project := r.dbs.Project().Name
	cs, err := r.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", orchestrator.LabelProject+"="+project)})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", project, err)
	}
	var out []WorkContainer
	for _, c := range cs.Items {
		role := c.Labels[orchestrator.LabelRole]
		if !isWorkRole(role) {
			continue
		}
		out = append(out, WorkContainer{ID: c.ID, Name: containerName(c), Role: role, Service: c.Labels[orchestrator.LabelService], Owner: c.Labels[orchestrator.LabelOwner], State: string(c.State)})
	}
	return out, nil
}

// RemoveWorkContainer force-removes a helper or throwaway container and its
// anonymous volumes (a throwaway's tmpfs), within 30 s; one already gone
// counts as removed.
func (r *Runner) RemoveWorkContainer(ctx context.Context, id string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := r.docker.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %.12s: %w; once the engine answers, run: docker rm -f %.12s", id, err, id)
	}
	return nil
}
