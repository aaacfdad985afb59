// Package aidbtest gives each Go test a database of its own, cloned from a
// snapshot aidb keeps, testcontainers-style:
//
//	func TestRules(t *testing.T) {
//		t.Parallel()
//		db := aidbtest.Clone(t, "rulesdb")
//		conn, err := pgx.Connect(t.Context(), db.URL)
//		...
//	}
//
// The clone is a new database on the same server as rulesdb, made from its
// newest snapshot (take one with make -f Makefile.ai ai-db-snapshot, or
// aidb snapshot rulesdb) in a second or so; t.Cleanup removes it. Tests
// running in parallel each get their own.
//
// It runs the aidb command (aidb clone, aidb clone rm), so it works on
// the project aidb finds from the test's folder (its compose file,
// aidb.yaml and AIDB_PROJECT, as aidb does) and takes the same locks: the
// aidb on PATH, or the one AIDB_BIN names. A clone whose test was killed
// before its cleanup ran expires after its TTL (an hour unless asked), and
// the next clone removes it.
package aidbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DB is a clone made for one test.
type DB struct {
	// URL is its postgres:// URL (with the password).
	URL string
	// Name is the clone's name (aidb clone rm NAME).
	Name string
	// Database is the application database it was cloned from.
	Database string
	// Snapshot is the snapshot it was made from.
	Snapshot string
}

// Option changes how Clone makes its clone.
type Option func(*options)

type options struct {
	from string
	ttl  time.Duration
	bin  string
	env  []string
}

// From clones the named snapshot instead of the newest one.
func From(snapshot string) Option { return func(o *options) { o.from = snapshot } }

// TTL is how long the clone may outlive a test killed before its cleanup
// (default: an hour).
func TTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// Binary runs this aidb (default: AIDB_BIN, else aidb on PATH).
func Binary(path string) Option { return func(o *options) { o.bin = path } }

// Env adds KEY=value settings to aidb's environment (AIDB_PROJECT=…,
// RULESDB_PORT=…), for tests that run against a project of their own.
func Env(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// Clone makes a clone of database db (a database of the project's
// aidb.yaml) from its newest snapshot and registers its removal with
// t.Cleanup. It fails the test (t.Fatalf) when aidb cannot make one,
// with aidb's own message (no snapshot, database not up, too many
// clones).
func Clone(t testing.TB, db string, opts ...Option) *DB {
	t.Helper()
	o := options{ttl: time.Hour, bin: os.Getenv("AIDB_BIN")}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bin == "" {
		o.bin = "aidb"
	}
	args := []string{"clone", db, "--json", "--ttl", o.ttl.String()}
	if o.from != "" {
		args = append(args, "--from", o.from)
	}
	out, err := run(t.Context(), o, args...)
	if err != nil {
		t.Fatalf("aidbtest: clone %s: %v", db, err)
	}
	var res struct {
		URL   string `json:"url"`
		Clone struct {
			Name string `json:"name"`
			From string `json:"from"`
		} `json:"clone"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.URL == "" || res.Clone.Name == "" {
		t.Fatalf("aidbtest: clone %s: aidb clone printed no clone (%v): %s", db, err, out)
	}
	// Registered before anything else can fail: the clone exists now.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Minute)
		defer cancel()
		if _, err := run(ctx, o, "clone", "rm", res.Clone.Name, db); err != nil {
			t.Errorf("aidbtest: remove clone %s of %s: %v", res.Clone.Name, db, err)
		}
	})
	return &DB{URL: res.URL, Name: res.Clone.Name, Database: db, Snapshot: res.Clone.From}
}

// run runs aidb with args and returns its stdout; an error carries its
// stderr.
func run(ctx context.Context, o options, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Env = append(os.Environ(), o.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", o.bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
