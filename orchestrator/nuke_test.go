package orchestrator

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
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/pgimage"
)

// nukeable is the unit project up (both databases, with a helper container
// of a backup) beside the project "other", up too.
func nukeable(t *testing.T) (*fakeEngine, *unitOrch) {
	t.Helper()
	f := withPostgres()
	other := newUnitOrch(t, f, "AIDB_PROJECT=other", "RULESDB_PORT=56432", "MEMORYDB_PORT=56433")
	require.NoError(t, other.Up(t.Context(), other.project.Databases))
	o := newUnitOrch(t, f)
	require.NoError(t, o.Up(t.Context(), o.project.Databases))
	_, err := f.ContainerCreate(t.Context(), client.ContainerCreateOptions{Name: "unit-helper", Config: &container.Config{Image: "postgres:15", Labels: Labels("unit", "rulesdb", RoleDump)}})
	require.NoError(t, err)
	return f, o
}

func TestNukeRemovesEverythingLabelledWithTheProjectOnly(t *testing.T) {
	t.Parallel()
	f, o := nukeable(t)
	rm, err := o.Nuke(t.Context(), o.project.Databases, true, false)
	require.NoError(t, err)

	assert.ElementsMatch(t, []string{"unit-rulesdb", "unit-memorydb", "unit-helper"}, rm.Containers)
	assert.ElementsMatch(t, []string{"unit_rulesdb-data", "unit_memorydb-data"}, rm.Volumes)
	assert.Equal(t, []string{"unit_default"}, rm.Networks)
	assert.Equal(t, []string{"other-memorydb", "other-rulesdb"}, f.names(), "another project's containers stay")
	assert.Contains(t, f.volumes, "other_rulesdb-data")
	require.Len(t, f.networks, 1)
	for _, n := range f.networks {
		assert.Equal(t, "other_default", n.Name)
	}
}

func TestNukeOfOneDatabaseKeepsTheOthersAndTheNetwork(t *testing.T) {
	t.Parallel()
	f, o := nukeable(t)
	rm, err := o.Nuke(t.Context(), []compose.Database{o.db(t, "memorydb")}, false, false)
	require.NoError(t, err)

	assert.Equal(t, []string{"unit-memorydb"}, rm.Containers)
	assert.Equal(t, []string{"unit_memorydb-data"}, rm.Volumes)
	assert.Empty(t, rm.Networks)
	assert.Contains(t, f.names(), "unit-rulesdb")
	assert.Contains(t, f.volumes, "unit_rulesdb-data")
	assert.Len(t, f.networks, 2)
}

// A container gone before its removal counts as removed; one the engine
// will not remove is said, and the rest is removed all the same.
func TestNukeGoesOnAfterAFailureAndCountsNotFoundAsRemoved(t *testing.T) {
	t.Parallel()
	f, o := nukeable(t)
	gone, stuck := f.byName("unit-helper").id, f.byName("unit-rulesdb").id
	f.removeErr[gone] = fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound)
	f.removeErr[stuck] = errors.New("device or resource busy")
	rm, err := o.Nuke(t.Context(), o.project.Databases, true, false)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "remove container unit-rulesdb: device or resource busy")
	assert.ElementsMatch(t, []string{"unit-memorydb", "unit-helper"}, rm.Containers)
	assert.ElementsMatch(t, []string{"unit_rulesdb-data", "unit_memorydb-data"}, rm.Volumes)
	assert.Equal(t, []string{"unit_default"}, rm.Networks)
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	local := pgimage.Tag("15")
	for _, tc := range []struct {
		name     string
		ref      string
		present  []string
		pullable bool
		buildErr error
		want     string
		pulls    int
		builds   int
		// wantErr is in the error; usage says it exits 2.
		wantErr string
		usage   bool
	}{
		{name: "present", ref: "postgres:15", present: []string{"postgres:15"}, want: "postgres:15"},
		{name: "pulled", ref: "postgres:15", pullable: true, want: "postgres:15", pulls: 1},
		{name: "the local build stands in", ref: "postgres:15", present: []string{local}, want: local, pulls: 1},
		{name: "built", ref: "postgres:15", want: local, pulls: 1, builds: 1},
		{name: "build fails", ref: "postgres:15", buildErr: errors.New("debootstrap failed"), pulls: 1, builds: 1,
			wantErr: "cannot pull postgres:15 (pull access denied for postgres:15: no registry here), and building " + local + " failed: debootstrap failed"},
		{name: "no major to build", ref: "postgres:latest", pulls: 1, usage: true,
			wantErr: "pull postgres:latest: pull access denied for postgres:latest: no registry here; and image \"postgres:latest\" names no PostgreSQL major version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine()
			for _, ref := range tc.present {
				f.images[ref] = true
			}
			f.pullable[tc.ref] = tc.pullable
			o := newUnitOrch(t, f)
			builds := 0
			o.buildImage = func(_ context.Context, major, ref string) (string, error) {
				builds++
				assert.Equal(t, "15", major)
				assert.Empty(t, ref, "built under the default local tag")
				return pgimage.Tag(major), tc.buildErr
			}
			got, err := o.EnsureImage(t.Context(), tc.ref)
			assert.Len(t, f.pulls, tc.pulls)
			assert.Equal(t, tc.builds, builds)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Equal(t, tc.usage, fault.KindOf(err) == fault.Invalid, "exit 2 only for bad input")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			if tc.want != tc.ref {
				assert.Contains(t, o.progressText(), local, "it says which image stands in for which")
			}
		})
	}
}

// Volumes that hold none of the nuked databases are kept and named: a
// service's that is not a database, a database's this configuration no
// longer names, and one a database's configuration no longer mounts.
// --all-volumes (allVolumes) removes them too.
func TestNukeKeepsVolumesItTookNoBackupOf(t *testing.T) {
	t.Parallel()
	for _, all := range []bool{false, true} {
		f, o := nukeable(t)
		for _, v := range []struct{ name, svc string }{
			{"unit_uploads", "files"},           // a service of another compose file
			{"unit_oldsdb-data", "oldsdb"},      // a database no longer configured
			{"unit_rulesdb-data-v1", "rulesdb"}, // rulesdb's earlier volume
		} {
			_, err := f.VolumeCreate(t.Context(), client.VolumeCreateOptions{Name: v.name, Labels: Labels("unit", v.svc, RoleData)})
			require.NoError(t, err)
		}
		rm, err := o.Nuke(t.Context(), o.project.Databases, true, all)
		require.NoError(t, err)
		if all {
			assert.ElementsMatch(t, []string{"unit_rulesdb-data", "unit_memorydb-data", "unit_uploads", "unit_oldsdb-data", "unit_rulesdb-data-v1"}, rm.Volumes)
			assert.Empty(t, rm.Kept)
			continue
		}
		assert.ElementsMatch(t, []string{"unit_rulesdb-data", "unit_memorydb-data"}, rm.Volumes)
		kept := map[string]string{}
		for _, k := range rm.Kept {
			kept[k.Name] = k.Reason
		}
		assert.Contains(t, kept["unit_uploads"], "not backed up")
		assert.Contains(t, kept["unit_oldsdb-data"], "does not name")
		assert.Contains(t, kept["unit_rulesdb-data-v1"], "no longer mounts")
		for name := range kept {
			assert.Contains(t, f.volumes, name, "%s is still there", name)
		}
	}
}

// Ctrl-C during the removals does not leave half a project behind:
// Nuke runs to its end, and says what it removed.
func TestNukeRunsToItsEndAfterCtrlC(t *testing.T) {
	t.Parallel()
	_, o := nukeable(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rm, err := o.Nuke(ctx, o.project.Databases, true, false)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"unit-rulesdb", "unit-memorydb", "unit-helper"}, rm.Containers)
	assert.ElementsMatch(t, []string{"unit_rulesdb-data", "unit_memorydb-data"}, rm.Volumes)
}
