package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The benchmark harness, at a small size and one pair per measure: every
// measure with both sides timed, the memory at both sizes, compression,
// the table printed, and nothing of its project left behind. (CI does not
// run the benchmark itself: its figures come from a quiet machine.)
func TestBenchHarnessSmoke(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bench")
	// verify_all's small backups come from a project of their own, the
	// harness's name with -va: its cleanup checks it is gone too.
	_ = newProject(t, "bench-va")
	out := filepath.Join(t.TempDir(), "bench.json")
	// bench is a package of aidb's module (the folder above), not of e2e's.
	cmd := exec.CommandContext(t.Context(), "go", "run", "./bench")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "AIDB_BIN="+aidbBin, "AIDB_BENCH_SIZE=16MB", "AIDB_BENCH_PAIRS=1", "AIDB_BENCH_VERIFY_FILES=3",
		"AIDB_BENCH_OUT="+out, "AIDB_BENCH_PROJECT="+p.name)
	printed, err := cmd.CombinedOutput()
	require.NoError(t, err, string(printed))

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var rep struct {
		SizeBytes int64 `json:"size_bytes"`
		Measures  []struct {
			Name      string    `json:"name"`
			AidbS     float64   `json:"aidb_s"`
			BaselineS float64   `json:"baseline_s"`
			Ratio     float64   `json:"ratio"`
			Pairs     int       `json:"pairs"`
			AidbRuns  []float64 `json:"aidb_runs"`
		} `json:"measures"`
		PeakRSSMB   map[string]float64 `json:"peak_rss_mb"`
		Compression []struct {
			Codec string `json:"codec"`
			Bytes int64  `json:"bytes"`
		} `json:"compression"`
	}
	require.NoError(t, json.Unmarshal(raw, &rep), string(raw))
	assert.Equal(t, int64(16<<20), rep.SizeBytes)
	var names []string
	for _, m := range rep.Measures {
		names = append(names, m.Name)
		assert.Positive(t, m.AidbS, m.Name)
		assert.Positive(t, m.BaselineS, m.Name)
		assert.InDelta(t, m.AidbS/m.BaselineS, m.Ratio, 0.01, m.Name)
		assert.Equal(t, 1, m.Pairs, m.Name)
		assert.Equal(t, []float64{m.AidbS}, m.AidbRuns, m.Name)
		assert.Contains(t, string(printed), m.Name)
	}
	assert.Equal(t, []string{"backup", "backup_vs_limit", "backup_vs_floor", "backup_stream", "restore", "restore_vs_pg_restore_j",
		"restore_vs_pg_restore_j_tuned", "restore_vs_floor", "restore_data", "verify", "verify_vs_tuned", "up_warm", "backup_all_parallel",
		"backup_repository", "reset", "clone", "verify_all", "wal_stream_overhead", "pitr_restore"}, names)
	svg, err := os.ReadFile(strings.TrimSuffix(out, ".json") + ".svg")
	require.NoError(t, err, "the chart is written beside the report")
	for _, n := range names {
		assert.Contains(t, string(svg), ">"+n+"<", "the chart has a bar for %s", n)
	}
	assert.Len(t, rep.PeakRSSMB, 4, "backup and restore at the size and an eighth of it: %v", rep.PeakRSSMB)
	for k, v := range rep.PeakRSSMB {
		assert.Positive(t, v, k)
	}
	var codecs []string
	for _, c := range rep.Compression {
		codecs = append(codecs, c.Codec)
		assert.Positive(t, c.Bytes, c.Codec)
	}
	assert.ElementsMatch(t, []string{"none", "gzip", "zstd"}, codecs)
	assert.Empty(t, p.labelled(context.WithoutCancel(t.Context())), "the harness removes its containers, volumes and network")
}
