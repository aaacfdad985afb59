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
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgimage"
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
	const pg17, vector = "aidb.local/postgres:17", "aidb.local/pgvector:pg17"
	for _, tc := range []struct {
		name     string
		ref      string
		present  []string
		pullable bool
		buildErr error
		want     string
		pulls    int
		// builds are the tags built, in order.
		builds []string
		// wantErr is in the error; usage says it exits 2.
		wantErr string
		usage   bool
	}{
		{name: "present", ref: "postgres:15", present: []string{"postgres:15"}, want: "postgres:15"},
		{name: "pulled", ref: "postgres:15", pullable: true, want: "postgres:15", pulls: 1},
		{name: "the local build stands in", ref: "postgres:15", present: []string{local}, want: local, pulls: 1},
		{name: "built", ref: "postgres:15", want: local, pulls: 1, builds: []string{local}},
		{name: "17 built on Debian 13", ref: "postgres:17", want: pg17, pulls: 1, builds: []string{pg17}},
		{name: "pgvector: its base first, then its layer", ref: "pgvector/pgvector:pg17", want: vector, pulls: 1, builds: []string{pg17, vector}},
		{name: "pgvector on the base there is", ref: "pgvector/pgvector:pg17", present: []string{pg17}, want: vector, pulls: 1, builds: []string{vector}},
		{name: "a manifest's stand-in is rebuilt as itself", ref: vector, present: []string{pg17}, want: vector, pulls: 1, builds: []string{vector}},
		{name: "build fails", ref: "postgres:15", buildErr: errors.New("debootstrap failed"), pulls: 1, builds: []string{local},
			wantErr: "cannot pull postgres:15 (pull access denied for postgres:15: no registry here), and building " + local + " failed: debootstrap failed"},
		{name: "base fails: no layer", ref: "pgvector/pgvector:pg17", buildErr: errors.New("debootstrap failed"), pulls: 1, builds: []string{pg17},
			wantErr: "and building " + vector + " failed: debootstrap failed"},
		{name: "no major to build", ref: "postgres:latest", pulls: 1, usage: true,
			wantErr: "pull postgres:latest: pull access denied for postgres:latest: no registry here; and aidb cannot build a stand-in for image postgres:latest: it builds postgres:15, postgres:17, pgvector/pgvector:pg17"},
		{name: "a major Debian does not ship", ref: "postgres:16", pulls: 1, usage: true,
			wantErr: "cannot build a stand-in for image postgres:16: it builds postgres:15, postgres:17, pgvector/pgvector:pg17"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine()
			for _, ref := range tc.present {
				f.images[ref] = true
			}
			f.pullable[tc.ref] = tc.pullable
			o := newUnitOrch(t, f)
			var builds []string
			o.buildImage = func(_ context.Context, r pgimage.Recipe, ref string) (string, error) {
				builds = append(builds, r.Tag)
				assert.Empty(t, ref, "built under the default local tag")
				if r.Base != nil {
					assert.True(t, f.images[r.Base.Tag], "a layer is built on a present base")
				}
				if tc.buildErr == nil {
					f.images[r.Tag] = true
				}
				return r.Tag, tc.buildErr
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
			if len(tc.builds) > 0 {
				assert.Contains(t, o.progressText(), "building "+tc.want+" from Debian's packages instead", "it says which image stands in for which")
				assert.Contains(t, o.progressText(), "built "+tc.want+"; it stands in for "+tc.ref)
			} else if tc.want != tc.ref {
				assert.Contains(t, o.progressText(), "; using the local build "+tc.want+" instead", "it says which image stands in for which")
			}
		})
	}
}

// aidb image build: bases before their layers, a shared base once, every
// reference checked before anything is built.
func TestBuildImages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refs    []string
		tag     string
		present []string
		builds  []string
		wantErr string
	}{
		{name: "both defaults", refs: []string{"postgres:15", "pgvector/pgvector:pg17"},
			builds: []string{"aidb.local/postgres:15", "aidb.local/postgres:17", "aidb.local/pgvector:pg17"}},
		{name: "a shared base once", refs: []string{"postgres:17", "pgvector/pgvector:pg17", "postgres:17.2"},
			builds: []string{"aidb.local/postgres:17", "aidb.local/pgvector:pg17"}},
		{name: "the base is rebuilt too", refs: []string{"pgvector/pgvector:pg17"}, present: []string{"aidb.local/postgres:17"},
			builds: []string{"aidb.local/postgres:17", "aidb.local/pgvector:pg17"}},
		{name: "a tag uses the base there is", refs: []string{"pgvector/pgvector:pg17"}, tag: "try:1", present: []string{"aidb.local/postgres:17"},
			builds: []string{"try:1"}},
		{name: "an unbuildable reference builds nothing", refs: []string{"postgres:15", "mysql:8"},
			wantErr: "aidb cannot build a stand-in for image mysql:8"},
		{name: "a tag names one image", refs: []string{"postgres:15", "postgres:17"}, tag: "try:1",
			wantErr: "--tag try:1 names one image, but the databases need postgres:15 and postgres:17"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine()
			for _, ref := range tc.present {
				f.images[ref] = true
			}
			o := newUnitOrch(t, f)
			var builds []string
			o.buildImage = func(_ context.Context, r pgimage.Recipe, ref string) (string, error) {
				if ref == "" {
					ref = r.Tag
				}
				builds = append(builds, ref)
				f.images[ref] = true
				return ref, nil
			}
			_, err := o.BuildImages(t.Context(), tc.refs, tc.tag)
			assert.Equal(t, tc.builds, builds)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Equal(t, fault.Invalid, fault.KindOf(err))
				return
			}
			require.NoError(t, err)
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
