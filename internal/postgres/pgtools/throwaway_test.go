package pgtools

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/orchestrator"
)

// startFails is an engine whose containers are created but cannot start;
// it records what was created and removed. The calls a throwaway does not
// reach fail.
type startFails struct {
	Docker
	created map[string]container.Config
	removed []string
}

func (e *startFails) ContainerCreate(_ context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	id := fmt.Sprintf("%064d", len(e.created)+1)
	e.created[id] = *o.Config
	return client.ContainerCreateResult{ID: id}, nil
}

func (e *startFails) ContainerStart(context.Context, string, client.ContainerStartOptions) (client.ContainerStartResult, error) {
	return client.ContainerStartResult{}, errors.New("driver failed programming external connectivity")
}

func (e *startFails) ContainerRemove(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if _, ok := e.created[id]; !ok {
		return client.ContainerRemoveResult{}, cerrdefs.ErrNotFound
	}
	e.removed = append(e.removed, id)
	return client.ContainerRemoveResult{}, nil
}

// project is the lifecycle with an image at hand.
type project struct {
	Databases
	p *compose.Project
}

func (d project) Project() *compose.Project { return d.p }
func (d project) EnsureImage(_ context.Context, _ string) (string, error) {
	return "aidb.local/postgres:15", nil
}

// A throwaway that cannot start is removed, labelled as it was, and its
// error names the step without repeating what its caller says
// ("start a throwaway container of IMAGE").
func TestStartThrowawayThatCannotStartIsRemoved(t *testing.T) {
	t.Parallel()
	e := &startFails{created: map[string]container.Config{}}
	r, err := New(e, project{p: &compose.Project{Name: "unit"}})
	require.NoError(t, err)

	_, err = r.StartThrowaway(t.Context(), "postgres:15", "rulesdb", "rules")
	require.Error(t, err)
	assert.Equal(t, "start container 000000000000: driver failed programming external connectivity", err.Error())
	require.Len(t, e.created, 1)
	for id, cfg := range e.created {
		assert.Equal(t, []string{id}, e.removed, "the container is removed again")
		assert.Equal(t, "aidb.local/postgres:15", cfg.Image, "the image EnsureImage gave")
		assert.Equal(t, orchestrator.RoleVerify, cfg.Labels[orchestrator.LabelRole])
		assert.Equal(t, "unit", cfg.Labels[orchestrator.LabelProject])
		assert.Contains(t, cfg.Env, "POSTGRES_USER=rules", "the source's superuser name")
		assert.NotEmpty(t, cfg.Labels[orchestrator.LabelOwner], "a killed run's throwaway can be told from a live one's")
	}
}
