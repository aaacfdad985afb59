package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/engine"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/runs/oplock"
	"github.com/aidb/aidb/orchestrator"
)

// app holds the global flags and the output streams of one invocation.
type app struct {
	stdout, stderr io.Writer
	composeFile    string
	configFile     string
	json           bool
	yes            bool
	lockTimeout    time.Duration
	// profiles are the compose profiles aidb up --profile enables
	// (empty: COMPOSE_PROFILES).
	profiles []string
	// amcheck is verify --amcheck: pg_amcheck after each equal compare.
	amcheck bool
}

// say prints a line for people, on stderr.
func (a *app) say(format string, v ...any) {
	fmt.Fprintf(a.stderr, format+"\n", v...)
}

// progress prints orchestration steps as they happen.
func (a *app) progress(line string) { a.say("%s", line) }

// printJSON writes v as the command's one JSON document on stdout. Lists
// are [] when empty, never null: a nil slice anywhere in v is written as
// an empty one.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(emptyLists(reflect.ValueOf(v)).Interface())
}

// emptyLists returns a copy of v with every nil slice (in structs, slices,
// arrays and behind pointers) made empty. Maps and values with their own
// MarshalJSON are left as they are.
func emptyLists(v reflect.Value) reflect.Value {
	if !v.IsValid() {
		return v
	}
	if v.Type().Implements(reflect.TypeFor[json.Marshaler]()) && v.Kind() != reflect.Pointer {
		return v
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(emptyLists(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return reflect.MakeSlice(v.Type(), 0, 0)
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v // []byte is a string in JSON
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(emptyLists(v.Index(i)))
		}
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if f := out.Field(i); f.CanSet() {
				f.Set(emptyLists(v.Field(i)))
			}
		}
		return out
	}
	return v
}

// loadProject reads the compose file and aidb.yaml the flags and
// environment name.
func (a *app) loadProject(ctx context.Context) (*compose.Project, error) {
	file := a.composeFile
	if file == "" {
		file = os.Getenv("AIDB_COMPOSE_FILE")
	}
	cfg := a.configFile
	if cfg == "" {
		cfg = os.Getenv("AIDB_CONFIG")
	}
	return compose.Load(ctx, compose.Options{ComposeFile: file, Discover: true, ConfigFile: cfg, Env: os.Environ(), Profiles: a.profiles})
}

// session is a loaded project, the databases a command names, and the
// connected engine: orch (the lifecycle) and tools (the client tools) are
// its halves.
type session struct {
	project *compose.Project
	dbs     []compose.Database
	eng     *engine.Engine
	orch    *orchestrator.Orchestrator
	tools   *pgtools.Runner
	// release gives up the locks the session took (lock), if any.
	release func()
}

// Close gives up the session's locks, then the engine connection.
func (s *session) Close() error {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	return s.eng.Close()
}

// lock takes the locks of operation op for the session's databases that
// are up and, with folder, the backup folder (a.lock); Close gives them up.
func (s *session) lock(ctx context.Context, a *app, op string, folder bool) error {
	release, err := a.lock(ctx, s, s.dbs, op, folder)
	if err != nil {
		return err
	}
	s.release = release
	return nil
}

// open loads the project and selects the named databases (none: all), then
// connects to the engine: bad configuration and unknown names are reported
// before the engine is needed.
func (a *app) open(ctx context.Context, names []string) (*session, error) {
	p, err := a.loadProject(ctx)
	if err != nil {
		return nil, err
	}
	return a.openProject(ctx, p, names)
}

// openProject is open for a project the command has already loaded.
func (a *app) openProject(ctx context.Context, p *compose.Project, names []string) (*session, error) {
	dbs, err := p.Select(names)
	if err != nil {
		return nil, err
	}
	e, err := engine.Connect(ctx, p, orchestrator.WithProgress(a.progress))
	if err != nil {
		return nil, err
	}
	// Where the helper path does not work, the exec stream does: said once
	// per run, since the helper path is the fast one.
	e.OnStreamFallback(func(reason string) {
		a.say("%s; pg_dump and psql go through docker exec's stream instead for this run (slower for large databases; --via stream skips this check)", reason)
	})
	return &session{project: p, dbs: dbs, eng: e, orch: e.Orchestrator, tools: e.Runner}, nil
}

// openLocked opens a session (open) and takes the locks of operation op
// (lock): every named database that is up and, with folder, the backup
// folder. Closing the session gives them up.
func (a *app) openLocked(ctx context.Context, names []string, op string, folder bool) (*session, error) {
	s, err := a.open(ctx, names)
	if err != nil {
		return nil, err
	}
	if err := s.lock(ctx, a, op, folder); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// confirm asks a yes/no question on the terminal; with --yes it does not
// ask. Without a terminal to ask on, it refuses (exit 2).
func (a *app) confirm(question string) error {
	if a.yes {
		return nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return fault.BadInput(errors.New(question + ": no terminal to ask on; pass --yes to go ahead"))
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
		return fault.BadInput(errors.New("not confirmed; nothing was changed"))
	}
	return nil
}

// lock takes the operation's locks (oplock.Take): each database of dbs
// that is up and, with folder, the backup folder, then clears what aidb
// runs killed before they finished left, saying what it removed. The
// returned release gives them up, also after Ctrl-C.
func (a *app) lock(ctx context.Context, s *session, dbs []compose.Database, op string, folder bool) (func(), error) {
	req := a.lockRequest(op)
	req.Databases, req.Lifecycle, req.Litter = dbs, s.orch, s.tools
	if folder {
		req.Folder = s.project.BackupDir
	}
	h, err := oplock.Take(ctx, req)
	if err != nil {
		return nil, err
	}
	return h.Release, nil
}

// lockRequest is an oplock request for op that says who is waited for and
// what was cleared; it names no database and no folder yet.
func (a *app) lockRequest(op string) oplock.Request {
	return oplock.Request{
		Op: "aidb " + op, Timeout: a.lockTimeout,
		WaitDatabase: func(db, holder string) {
			a.say("%s: waiting for another aidb operation to finish (%s), up to %s", db, holder, a.lockTimeout)
		},
		WaitFolder: func(holder string) {
			a.say("backup folder: waiting for %s, up to %s", holder, a.lockTimeout)
		},
		Cleared: a.sayCleared,
	}
}

// Databases, Dumper and Verifier make a session what a routine run works
// on (routine.Session).
func (s *session) Databases() []compose.Database { return s.dbs }
func (s *session) Dumper() backup.Dumper         { return s.eng }
func (s *session) Verifier() verify.Throwaways   { return s.tools }
func (s *session) Streams() pitr.Streams         { return s.eng }

// lockFolder takes the backup folder's lock alone, for an operation that
// needs no engine (prune, push, pull): no backup or prune changes what it
// reads meanwhile. The returned release gives it up.
func (a *app) lockFolder(ctx context.Context, dir, op string) (func(), error) {
	req := a.lockRequest(op)
	req.Folder = dir
	h, err := oplock.Take(ctx, req)
	if err != nil {
		return nil, err
	}
	return h.Release, nil
}
