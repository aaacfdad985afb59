package freshness

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
)

// fakeCatalog holds intact backups' manifests and a verification log.
type fakeCatalog struct {
	backups []manifest.Manifest
	log     verifylog.Log
}

func (f fakeCatalog) Newest(_ context.Context, db string, kind backupfile.Kind, match func(manifest.Manifest) bool) (string, manifest.Manifest, error) {
	ms := slices.Clone(f.backups)
	slices.SortFunc(ms, func(a, b manifest.Manifest) int { return b.Created.Compare(a.Created) })
	for _, m := range ms {
		if m.Database == db && m.Kind == kind && (match == nil || match(m)) {
			return "backups/" + m.File, m, nil
		}
	}
	return "", manifest.Manifest{}, nil
}

func (f fakeCatalog) Verifications(context.Context) (verifylog.Log, error) { return f.log, nil }

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func full(db, file string, age time.Duration) manifest.Manifest {
	return manifest.Manifest{Database: db, Kind: backupfile.Full, File: file, SHA256: "sha-" + file, Created: now.Add(-age)}
}

func verified(file string, outcome verifylog.Outcome) verifylog.Record {
	return verifylog.Record{File: file, SHA256: "sha-" + file, At: now.Add(-time.Minute), Outcome: outcome}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	safety := full("rulesdb", "rulesdb-safety.sql", time.Hour)
	safety.Safety = &manifest.Safety{Reason: "before a restore", Command: "aidb restore"}
	schema := full("rulesdb", "rulesdb-schema.sql", time.Hour)
	schema.Kind = backupfile.Schema
	tests := []struct {
		name    string
		backups []manifest.Manifest
		log     verifylog.Log
		policy  Policy
		problem string // "" fresh
	}{
		{"fresh", []manifest.Manifest{full("rulesdb", "a.sql", 3*time.Hour)}, nil, Policy{MaxAge: 26 * time.Hour}, ""},
		{"too old", []manifest.Manifest{full("rulesdb", "a.sql", 30*time.Hour)}, nil, Policy{MaxAge: 26 * time.Hour},
			"the newest backup is 30h old (max 26h)"},
		{"none", nil, nil, Policy{MaxAge: time.Hour}, "no intact full backup"},
		{"another database's backup does not count", []manifest.Manifest{full("memorydb", "m.sql", time.Minute)}, nil, Policy{MaxAge: time.Hour}, "no intact full backup"},
		{"a safety backup is not the user's backup", []manifest.Manifest{safety}, nil, Policy{MaxAge: 2 * time.Hour}, "no intact full backup"},
		{"a schema backup is not a full one", []manifest.Manifest{schema}, nil, Policy{MaxAge: 2 * time.Hour}, "no intact full backup"},
		{"verified asked, never verified", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)}, nil, Policy{MaxAge: 26 * time.Hour, Verified: true},
			"no backup was verified equal to its manifest"},
		{"verified asked, the verification found a difference", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)},
			verifylog.Log{verified("a.sql", verifylog.Differs)}, Policy{MaxAge: 26 * time.Hour, Verified: true},
			"no backup was verified equal to its manifest"},
		{"verified asked, an older verified one is young enough", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour), full("rulesdb", "b.sql", 20*time.Hour)},
			verifylog.Log{verified("b.sql", verifylog.Equal)}, Policy{MaxAge: 26 * time.Hour, Verified: true}, ""},
		{"verified asked, the verified one is too old", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour), full("rulesdb", "b.sql", 50*time.Hour)},
			verifylog.Log{verified("b.sql", verifylog.Equal)}, Policy{MaxAge: 26 * time.Hour, Verified: true},
			"the newest verified backup is 2d2h old (max 26h)"},
		{"a later difference outweighs an earlier equal verification", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)},
			verifylog.Log{verified("a.sql", verifylog.Equal), {File: "a.sql", SHA256: "sha-a.sql", At: now, Outcome: verifylog.Differs}},
			Policy{MaxAge: 26 * time.Hour, Verified: true}, "no backup was verified equal to its manifest"},
		{"a verification that could not run does not outweigh an equal one", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)},
			verifylog.Log{verified("a.sql", verifylog.Equal), {File: "a.sql", SHA256: "sha-a.sql", At: now, Outcome: verifylog.Failed}},
			Policy{MaxAge: 26 * time.Hour, Verified: true}, ""},
		{"a record of other bytes under the same name does not count", []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)},
			verifylog.Log{{File: "a.sql", SHA256: "older-bytes", At: now, Outcome: verifylog.Equal}}, Policy{MaxAge: 26 * time.Hour, Verified: true},
			"no backup was verified equal to its manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := Check(t.Context(), fakeCatalog{tt.backups, tt.log}, []string{"rulesdb"}, tt.policy, now)
			if len(st) != 1 {
				t.Fatalf("got %d statuses, want 1 (err %v)", len(st), err)
			}
			if st[0].Problem != tt.problem {
				t.Errorf("problem = %q, want %q", st[0].Problem, tt.problem)
			}
			if st[0].Fresh != (tt.problem == "") {
				t.Errorf("fresh = %v with problem %q", st[0].Fresh, st[0].Problem)
			}
			var se *StaleError
			if tt.problem == "" && err != nil {
				t.Errorf("fresh, but err = %v", err)
			}
			if tt.problem != "" && (!errors.As(err, &se) || fault.KindOf(err) != fault.Stale) {
				t.Errorf("stale, but err = %v (want a StaleError of kind stale)", err)
			}
		})
	}
}

func TestCheckReportsLastVerificationOfTheNewest(t *testing.T) {
	t.Parallel()
	c := fakeCatalog{[]manifest.Manifest{full("rulesdb", "a.sql", time.Hour)}, verifylog.Log{verified("a.sql", verifylog.Equal)}}
	st, err := Check(t.Context(), c, []string{"rulesdb"}, Policy{MaxAge: 2 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].LastVerified == nil || st[0].LastVerified.Outcome != verifylog.Equal {
		t.Fatalf("last verified = %+v, want the equal record", st[0].LastVerified)
	}
	if st[0].Newest != "backups/a.sql" || st[0].AgeSeconds != 3600 {
		t.Errorf("newest %q age %v, want backups/a.sql 3600", st[0].Newest, st[0].AgeSeconds)
	}
}

func TestCheckNamesEveryStaleDatabase(t *testing.T) {
	t.Parallel()
	c := fakeCatalog{backups: []manifest.Manifest{full("rulesdb", "a.sql", time.Hour)}}
	_, err := Check(t.Context(), c, []string{"rulesdb", "memorydb"}, Policy{MaxAge: 2 * time.Hour}, now)
	var se *StaleError
	if !errors.As(err, &se) || len(se.Stale) != 1 || se.Stale[0].Database != "memorydb" {
		t.Fatalf("err = %v, want memorydb alone stale", err)
	}
}

func TestCheckRefusesNoMaxAge(t *testing.T) {
	t.Parallel()
	_, err := Check(t.Context(), fakeCatalog{}, []string{"rulesdb"}, Policy{}, now)
	if fault.KindOf(err) != fault.Invalid {
		t.Fatalf("err = %v, want bad input", err)
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", 12 * time.Minute: "12m", 3*time.Hour + 5*time.Minute: "3h5m",
		26 * time.Hour: "26h", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

// With a repository, the newest backup of either place counts, and a
// verification recorded in the folder's log counts for the same bytes in
// the repository.
func TestCheckOverTheFolderAndTheRepository(t *testing.T) {
	t.Parallel()
	folder := fakeCatalog{backups: []manifest.Manifest{full("rulesdb", "old.sql", 40*time.Hour)},
		log: verifylog.Log{verified("new.sql", verifylog.Equal)}}
	repo := fakeCatalog{backups: []manifest.Manifest{full("rulesdb", "new.sql", time.Hour)}}
	st, err := Check(t.Context(), Union(folder, repo), []string{"rulesdb"}, Policy{MaxAge: 26 * time.Hour, Verified: true}, now)
	if err != nil {
		t.Fatalf("the repository's new backup, verified from the folder's log, is fresh: %v", err)
	}
	if st[0].Newest != "backups/new.sql" {
		t.Errorf("newest = %q, want the repository's", st[0].Newest)
	}
	if _, err := Check(t.Context(), folder, []string{"rulesdb"}, Policy{MaxAge: 26 * time.Hour}, now); err == nil {
		t.Error("the folder alone holds only a 40h-old backup: stale")
	}
}
