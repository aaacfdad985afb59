package restore

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// A data-only restore's check runs in psql after the file: the check phase
// is reported when the file has been read, not before.
func TestScriptReportsCheckAfterTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f.sql")
	require.NoError(t, os.WriteFile(path, []byte(sampleDump), 0o600))
	var phases []Phase
	var readAtCheck, lastRead int64
	p := Plan{
		Request: Request{
			Phase: func(ph Phase) { phases = append(phases, ph); readAtCheck = lastRead },
			Progress: func(read, total int64) {
				assert.Equal(t, int64(len(sampleDump)), total)
				lastRead = read
			},
		},
		Path: path, Size: int64(len(sampleDump)), Compression: backupfile.None,
	}
	r, closeScript, err := p.script(t.Context(), "TRUNCATE x;", "SELECT check();", PhaseCheck)
	require.NoError(t, err)
	defer func() { _ = closeScript() }()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(b), "SELECT check();\nCOMMIT;\n"))
	assert.Equal(t, []Phase{PhaseCheck}, phases, "load is reported by the caller, check once")
	assert.Equal(t, int64(len(sampleDump)), readAtCheck, "check comes after the whole file")

	// A full restore's script has nothing after the file: its check is the
	// fingerprint after psql, reported by stage.
	phases = nil
	r, closeScript2, err := p.script(t.Context(), "", "", "")
	require.NoError(t, err)
	defer func() { _ = closeScript2() }()
	_, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.Empty(t, phases)
}

func TestReadyKeepsTheFileOrderWithinATable(t *testing.T) {
	t.Parallel()
	items := []postItem{
		{keys: []string{"public.a"}},
		{keys: []string{"public.a"}},
		{keys: []string{"public.b"}},
		{keys: []string{"public.b", "public.c"}},
		{keys: []string{"public.c"}},
	}
	alone := holds{alone: 1}
	assert.Equal(t, 0, ready(items, map[string]holds{}), "the first item first")
	assert.Equal(t, 2, ready(items, map[string]holds{"public.a": alone}), "a table being built waits; another goes ahead")
	assert.Equal(t, -1, ready(items[3:], map[string]holds{"public.b": alone}),
		"an item waits for all its tables, and a later one on them waits for it")
	assert.Equal(t, 0, ready(items[3:], map[string]holds{"public.a": alone}), "tables of other items do not hold it")
}

// A table's indexes (CREATE INDEX: SHARE locks) build side by side, as
// pg_restore -j builds them; a constraint holds its table alone and keeps
// its place in the file's order against them.
func TestReadyBuildsATablesIndexesSideBySide(t *testing.T) {
	t.Parallel()
	pk := postItem{keys: []string{"public.m"}}
	idx := postItem{keys: []string{"public.m"}, shared: true}
	shared := holds{shared: 1}
	assert.Equal(t, 0, ready([]postItem{idx, idx}, map[string]holds{"public.m": shared}), "an index joins one being built on its table")
	assert.Equal(t, -1, ready([]postItem{idx}, map[string]holds{"public.m": {alone: 1}}), "an index waits for the key being added")
	assert.Equal(t, -1, ready([]postItem{pk}, map[string]holds{"public.m": shared}), "a constraint waits for the indexes being built")
	assert.Equal(t, -1, ready([]postItem{pk, idx}, map[string]holds{"public.m": shared}),
		"an index does not overtake an earlier constraint of its table")
	assert.Equal(t, 0, ready([]postItem{pk, idx}, map[string]holds{"public.x": {alone: 1}}), "another table's work does not hold it")
}

// The post-data plan keeps the file's order between kinds: a foreign key
// on a partitioned table that refers to its own key waits for the index
// attachments that complete that key (the partitioned self-reference of
// issue 27), and a comment rides with the index it follows instead of
// splitting the run of indexes.
func TestPlanPostKeepsTheDumpsOrderBetweenKinds(t *testing.T) {
	t.Parallel()
	e := func(typ, name, sql string) dumpformat.Entry {
		return dumpformat.Entry{Type: typ, Name: name, Schema: "public", SQL: sql}
	}
	post := []dumpformat.Entry{
		e("CONSTRAINT", "p p_pkey", "ALTER TABLE ONLY public.p\n    ADD CONSTRAINT p_pkey PRIMARY KEY (id);"),
		e("CONSTRAINT", "p1 p1_pkey", "ALTER TABLE ONLY public.p1\n    ADD CONSTRAINT p1_pkey PRIMARY KEY (id);"),
		e("INDEX", "t_x", "CREATE INDEX t_x ON public.t USING btree (x);"),
		e("COMMENT", "INDEX t_x", "COMMENT ON INDEX public.t_x IS 'x';"),
		e("INDEX", "u_y", "CREATE INDEX u_y ON public.u USING btree (y);"),
		e("INDEX ATTACH", "p1_pkey", "ALTER INDEX public.p_pkey ATTACH PARTITION public.p1_pkey;"),
		e("TRIGGER", "t trg", "CREATE TRIGGER trg AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();"),
		e("FK CONSTRAINT", "p p_parent_fkey", "ALTER TABLE public.p\n    ADD CONSTRAINT p_parent_fkey FOREIGN KEY (parent) REFERENCES public.p(id);"),
		e("FK CONSTRAINT", "u u_t_fkey", "ALTER TABLE ONLY public.u\n    ADD CONSTRAINT u_t_fkey FOREIGN KEY (t) REFERENCES public.t(id);"),
		e("POLICY", "t own", "CREATE POLICY own ON public.t USING (true);"),
	}
	r := roots{"public.p1": {"public.p"}}
	var got [][]string
	for _, step := range planPost(post, r) {
		var names []string
		for _, it := range step {
			n := it.e.Type + " " + it.e.Name
			for _, a := range it.after {
				n += " + " + a.Type + " " + a.Name
			}
			names = append(names, n)
		}
		got = append(got, names)
	}
	assert.Equal(t, [][]string{
		{"CONSTRAINT p p_pkey", "CONSTRAINT p1 p1_pkey", "INDEX t_x + COMMENT INDEX t_x", "INDEX u_y"},
		{"INDEX ATTACH p1_pkey", "TRIGGER t trg"},
		{"FK CONSTRAINT p p_parent_fkey", "FK CONSTRAINT u u_t_fkey"},
		{"POLICY t own"},
	}, got)
	steps := planPost(post, r)
	assert.Equal(t, []string{"public.p"}, steps[0][1].keys, "a partition's key locks its tree's root")
	assert.False(t, steps[0][0].shared, "a constraint holds its table alone")
	assert.True(t, steps[0][2].shared, "a plain index shares its table")
	clustered := planPost([]dumpformat.Entry{e("INDEX", "t_z", "CREATE INDEX t_z ON public.t USING btree (z);\n\nALTER TABLE public.t CLUSTER ON t_z;")}, r)
	assert.False(t, clustered[0][0].shared, "an index entry that alters its table (CLUSTER ON) holds it alone")
	assert.Nil(t, steps[1][0].keys, "a serial step's items have no keys")
}
