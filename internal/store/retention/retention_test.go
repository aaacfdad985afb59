package retention

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// ago is a backup created d before now.
func ago(d time.Duration) time.Time { return now.Add(-d) }

func full(file string, created time.Time) Backup {
	return Backup{File: file, Database: "rulesdb", Kind: backupfile.Full, Created: created, State: Intact}
}

func with(b Backup, change func(*Backup)) Backup {
	change(&b)
	return b
}

func damaged(b *Backup) { b.State, b.Problem = Damaged, "it is 10 bytes but its manifest says 20" }
func foreign(b *Backup) { b.State = Foreign }
func safety(b *Backup)  { b.Safety, b.SafetyWhy = true, "aidb restore: the data before the restore" }
func latest(b *Backup)  { b.Latest = true }
func memorydb(b *Backup) {
	b.Database = "memorydb"
}
func kind(k backupfile.Kind) func(*Backup) { return func(b *Backup) { b.Kind = k } }

func TestApply(t *testing.T) {
	t.Parallel()
	h := time.Hour
	day := 24 * h
	keep1 := Policy{KeepLast: 1, SafetyKeepWithin: 7 * day}
	cases := []struct {
		name    string
		policy  Policy
		backups []Backup
		sets    map[string][]string
		keep    []string
		// reasons: file → a part of its reason
		reasons map[string]string
		// setsGone: set manifests to remove
		setsGone []string
	}{
		{
			name:   "keep-last ranks by created time",
			policy: Policy{KeepLast: 2},
			backups: []Backup{
				full("a", ago(3*h)), full("b", ago(2*h)), full("c", ago(1*h)),
			},
			keep:    []string{"b", "c"},
			reasons: map[string]string{"c": "#1 of 3 intact full backups of rulesdb", "b": "#2 of 3", "a": "#3 of 3"},
		},
		{
			name:   "a name that says newest does not make it newest",
			policy: keep1,
			backups: []Backup{
				full("rulesdb-20991231-235959.sql", ago(3*h)), full("rulesdb-20250601-100000.sql", ago(2*h)),
			},
			keep: []string{"rulesdb-20250601-100000.sql"},
		},
		{
			name:   "the damaged newest counts for nothing and is left alone",
			policy: keep1,
			backups: []Backup{
				full("b1", ago(7*h)), full("b2", ago(6*h)), full("b3", ago(5*h)), with(full("b4", ago(4*h)), damaged),
			},
			keep:    []string{"b3", "b4"},
			reasons: map[string]string{"b4": "left alone: damaged (it is 10 bytes", "b3": "#1 of 3"},
		},
		{
			name:   "a foreign file newest by name counts for nothing and is left alone",
			policy: keep1,
			backups: []Backup{
				with(full("rulesdb-20991231-235959.sql", time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC)), foreign), full("b1", ago(2*h)), full("b2", ago(1*h)),
			},
			keep:    []string{"rulesdb-20991231-235959.sql", "b2"},
			reasons: map[string]string{"rulesdb-20991231-235959.sql": "left alone: no manifest"},
		},
		{
			name:   "damaged and foreign files go when asked",
			policy: Policy{KeepLast: 1, RemoveDamaged: true, RemoveForeign: true},
			backups: []Backup{
				with(full("f", ago(1*h)), foreign), with(full("d", ago(2*h)), damaged), full("b", ago(3*h)),
			},
			keep:    []string{"b"},
			reasons: map[string]string{"f": "no manifest", "d": "damaged (it is 10 bytes"},
		},
		{
			name:   "only damaged asked: foreign stays",
			policy: Policy{KeepLast: 1, RemoveDamaged: true},
			backups: []Backup{
				with(full("f", ago(1*h)), foreign), with(full("d", ago(2*h)), damaged), full("b", ago(3*h)),
			},
			keep: []string{"b", "f"},
		},
		{
			name:   "a safety backup does not count toward keep-last and stays its week",
			policy: keep1,
			backups: []Backup{
				full("u1", ago(3*h)), full("u2", ago(2*h)), with(full("s", ago(1*h)), safety),
			},
			keep:    []string{"u2", "s"},
			reasons: map[string]string{"s": "safety backup (aidb restore: the data before the restore), 1h0m0s old", "u1": "#2 of 2"},
		},
		{
			name:   "an old safety backup goes",
			policy: keep1,
			backups: []Backup{
				with(full("s", ago(8*day)), safety), full("u", ago(9*day)),
			},
			keep:    []string{"u"},
			reasons: map[string]string{"s": "safety backups stay 168h0m0s"},
		},
		{
			name:   "safety backups within the window all stay",
			policy: Policy{KeepLast: 1, SafetyKeepWithin: 2 * day},
			backups: []Backup{
				with(full("s1", ago(1*h)), safety), with(full("s2", ago(47*h)), safety), with(full("s3", ago(49*h)), safety), full("u", ago(50*day)),
			},
			keep: []string{"s1", "s2", "u"},
		},
		{
			name:   "the only intact full backup stays even as an old safety backup",
			policy: Policy{KeepLast: 1, SafetyKeepWithin: 0, RemoveDamaged: true},
			backups: []Backup{
				with(full("d", ago(1*h)), damaged), with(full("s1", ago(30*day)), safety), with(full("s2", ago(20*day)), safety),
			},
			keep:    []string{"s2"},
			reasons: map[string]string{"s2": "the newest intact full backup of rulesdb: always kept"},
		},
		{
			name:   "the user's full backup is the one always kept, not a newer safety backup",
			policy: Policy{KeepLast: 1, SafetyKeepWithin: 0},
			backups: []Backup{
				with(full("s", ago(1*h)), safety), full("u", ago(2*h)),
			},
			keep: []string{"u"},
		},
		{
			name:   "keep-last counts per database and kind",
			policy: keep1,
			backups: []Backup{
				full("r1", ago(6*h)), full("r2", ago(5*h)),
				with(full("m1", ago(4*h)), memorydb), with(full("m2", ago(3*h)), memorydb),
				with(full("d1", ago(2*h)), kind(backupfile.Data)), with(full("d2", ago(1*h)), kind(backupfile.Data)),
				with(full("s1", ago(2*h)), kind(backupfile.Schema)),
			},
			keep: []string{"r2", "m2", "d2", "s1"},
		},
		{
			name:   "data-only backups are not full: the newest full stays beside newer data backups",
			policy: keep1,
			backups: []Backup{
				full("f1", ago(5*h)), with(full("d1", ago(2*h)), kind(backupfile.Data)), with(full("d2", ago(1*h)), kind(backupfile.Data)),
			},
			keep: []string{"f1", "d2"},
		},
		{
			name:   "an intact file the latest pointer names stays",
			policy: keep1,
			backups: []Backup{
				with(full("a", ago(3*h)), latest), full("b", ago(2*h)),
			},
			keep:    []string{"a", "b"},
			reasons: map[string]string{"a": "rulesdb-latest points at it"},
		},
		{
			name:   "a damaged file the latest pointer names goes when damaged files are to go",
			policy: Policy{KeepLast: 1, RemoveDamaged: true},
			backups: []Backup{
				with(with(full("a", ago(1*h)), latest), damaged), full("b", ago(2*h)),
			},
			keep: []string{"b"},
		},
		{
			name:   "a set is kept whole, and its manifest goes with its last file",
			policy: keep1,
			backups: []Backup{
				full("r1", ago(5*h)), with(full("m1", ago(5*h)), memorydb),
				full("r2", ago(4*h)), with(full("m2", ago(4*h)), memorydb),
				full("r3", ago(3*h)),
			},
			sets: map[string][]string{
				"set-1.manifest.json": {"r1", "m1"},
				"set-2.manifest.json": {"r2", "m2"},
			},
			keep:     []string{"r2", "m2", "r3"},
			reasons:  map[string]string{"r2": "in set set-2.manifest.json with m2, which stays: a set is kept whole"},
			setsGone: []string{"set-1.manifest.json"},
		},
		{
			name:   "a set whose files are gone already loses its manifest",
			policy: keep1,
			backups: []Backup{
				full("r3", ago(3*h)),
			},
			sets:     map[string][]string{"set-1.manifest.json": {"r1", "m1"}},
			keep:     []string{"r3"},
			setsGone: []string{"set-1.manifest.json"},
		},
		{
			name:   "a set of safety backups goes whole after its window",
			policy: keep1,
			backups: []Backup{
				with(full("rs", ago(10*day)), safety), with(with(full("ms", ago(10*day)), safety), memorydb),
				full("r", ago(11*day)), with(full("m", ago(11*day)), memorydb),
			},
			sets:     map[string][]string{"set-s.manifest.json": {"rs", "ms"}},
			keep:     []string{"r", "m"},
			setsGone: []string{"set-s.manifest.json"},
		},
		{
			name:   "a damaged file in a set that stays stays too",
			policy: Policy{KeepLast: 1, RemoveDamaged: true},
			backups: []Backup{
				with(full("r1", ago(2*h)), damaged), with(full("m1", ago(2*h)), memorydb), full("r0", ago(3*h)),
			},
			sets: map[string][]string{"set-1.manifest.json": {"r1", "m1"}},
			keep: []string{"r1", "m1", "r0"},
		},
		{
			name:   "equal created times rank by name, deterministically",
			policy: keep1,
			backups: []Backup{
				full("rulesdb-20250601-100000.sql", ago(h)), full("rulesdb-20250601-100001.sql", ago(h)),
			},
			keep: []string{"rulesdb-20250601-100001.sql"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tc.policy.Validate())
			plan := Apply(tc.policy, now, tc.backups, tc.sets)
			require.Len(t, plan.Decisions, len(tc.backups))
			var kept []string
			for i, d := range plan.Decisions {
				assert.Equal(t, tc.backups[i], d.Backup, "decisions come in the order of the backups")
				assert.NotEmpty(t, d.Reason, d.File)
				if d.Keep {
					kept = append(kept, d.File)
				}
				if want, ok := tc.reasons[d.File]; ok {
					assert.Contains(t, d.Reason, want, d.File)
				}
			}
			assert.ElementsMatch(t, tc.keep, kept)
			var gone []string
			for _, s := range plan.Sets {
				assert.NotEmpty(t, s.Reason, s.Name)
				if s.Remove {
					gone = append(gone, s.Name)
				}
			}
			assert.ElementsMatch(t, tc.setsGone, gone)
		})
	}
}

// Whatever the policy, no database that had an intact full backup is left
// without one, and no set manifest that stays names a removed file.
func TestApplyInvariants(t *testing.T) {
	t.Parallel()
	var backups []Backup
	changes := []func(*Backup){damaged, foreign, safety, latest, memorydb, kind(backupfile.Data)}
	for i := range 40 {
		b := full(time.Duration(i).String(), ago(time.Duration(i*13%40)*12*time.Hour))
		for j, c := range changes {
			if (i*7+j*3)%(j+3) == 0 {
				c(&b)
			}
		}
		backups = append(backups, b)
	}
	sets := map[string][]string{"s1": {"0s", "1ns"}, "s2": {"5ns", "6ns", "gone"}, "s3": {"30ns", "31ns"}}
	for _, p := range []Policy{
		{KeepLast: 1}, {KeepLast: 1, RemoveDamaged: true, RemoveForeign: true}, {KeepLast: 3, SafetyKeepWithin: 72 * time.Hour}, {KeepLast: 100},
		{KeepDaily: 1}, {KeepHourly: 2, KeepWeekly: 1, KeepYearly: 1},
	} {
		plan := Apply(p, now, backups, sets)
		keptFull := map[string]bool{}
		hadFull := map[string]bool{}
		removed := map[string]bool{}
		for _, d := range plan.Decisions {
			if d.State == Intact && d.Kind == backupfile.Full {
				hadFull[d.Database] = true
				keptFull[d.Database] = keptFull[d.Database] || d.Keep
			}
			if !d.Keep {
				removed[d.File] = true
				assert.False(t, d.State != Intact && !(d.State == Damaged && p.RemoveDamaged) && !(d.State == Foreign && p.RemoveForeign), "%+v", d)
			}
		}
		assert.Equal(t, hadFull, keptFull, "%+v", p)
		for _, s := range plan.Sets {
			if s.Remove {
				continue
			}
			for _, f := range sets[s.Name] {
				assert.False(t, removed[f], "%s stays but names %s, which goes", s.Name, f)
			}
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	assert.ErrorContains(t, Policy{KeepLast: 0}.Validate(), "keep at least 1")
	assert.ErrorContains(t, Policy{KeepLast: 1, SafetyKeepWithin: -time.Hour}.Validate(), "negative")
	assert.NoError(t, Policy{KeepLast: 1}.Validate())
}
