package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/postgres/pgimage"
)

// Orchestrator drives one compose project's databases on one engine.
type Orchestrator struct {
	docker  Docker
	project *compose.Project
	// progress receives one line per step a person would want to see
	// (pulling, building an image, waiting for a database).
	progress func(string)
	// buildImage builds the local PostgreSQL image of a recipe (a layered
	// one on its base, which must be present), tagged ref (empty: the
	// recipe's tag); it returns the image reference.
	buildImage func(ctx context.Context, r pgimage.Recipe, ref string) (string, error)
	// pollInterval is the readiness poll interval (100 ms; unit tests
	// shorten it).
	pollInterval time.Duration
	// ping connects to a postgres:// URL and runs SELECT 1 (selectOne;
	// unit tests answer for the databases of their fake engine).
	ping func(ctx context.Context, connString string) error
	// composer runs the services that are not databases (WithComposer).
	composer Composer
}

// Option configures an Orchestrator.
type Option func(*Orchestrator) error

// WithProgress sends progress lines to fn (default: discarded).
func WithProgress(fn func(string)) Option {
	return func(o *Orchestrator) error {
		if fn == nil {
			return errors.New("orchestrator: nil progress function")
		}
		o.progress = fn
		return nil
	}
}

// New returns an Orchestrator for project on the engine behind docker
// (a *client.Client from Connect).
func New(docker Docker, project *compose.Project, opts ...Option) (*Orchestrator, error) {
	if docker == nil || project == nil {
		return nil, errors.New("orchestrator: docker client and project are required")
	}
	o := &Orchestrator{
		docker:       docker,
		project:      project,
		progress:     func(string) {},
		pollInterval: 100 * time.Millisecond,
		ping:         selectOne,
	}
	o.buildImage = func(ctx context.Context, r pgimage.Recipe, ref string) (string, error) {
		opts := pgimage.Options{Recipe: r, Ref: ref, Progress: o.progress}
		if r.Base != nil {
			return pgimage.AddLayer(ctx, builder{e: o.docker}, opts)
		}
		return pgimage.Build(ctx, importer{e: o.docker}, opts)
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Project is the project this orchestrator runs.
func (o *Orchestrator) Project() *compose.Project { return o.project }

// ConnString is the database's postgres:// URL as reached from this host:
// the published port on the engine's host (127.0.0.1 for a local engine).
// It holds the password: local development databases only; never log it.
func (o *Orchestrator) ConnString(db compose.Database) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(db.User, db.Password),
		Host:     engineHostIP(o.docker.DaemonHost(), db.HostIP) + ":" + strconv.Itoa(db.HostPort),
		Path:     "/" + db.DBName,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// engineHostIP is the address published ports are reached at: the engine's
// host for tcp:// and ssh:// engines, else the bound address, with the
// wildcard replaced by loopback.
func engineHostIP(daemonHost, hostIP string) string {
	if u, err := url.Parse(daemonHost); err == nil && (u.Scheme == "tcp" || u.Scheme == "ssh") && u.Hostname() != "" {
		return u.Hostname()
	}
	if hostIP == "" || hostIP == "0.0.0.0" || hostIP == "::" {
		return "127.0.0.1"
	}
	return hostIP
}

// RedactURL hides the password of a postgres:// URL, for messages.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ImageMajor is the PostgreSQL major version an image reference asks for:
// postgres:15, postgres:15.4-bookworm and pgvector/pgvector:pg15 all give 15.
func ImageMajor(ref string) (string, error) {
	tag := ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		tag = ref[i+1:]
	}
	tag = strings.TrimPrefix(tag, "pg")
	end := 0
	for end < len(tag) && tag[end] >= '0' && tag[end] <= '9' {
		end++
	}
	if end == 0 {
		return "", fmt.Errorf("image %q names no PostgreSQL major version in its tag: write one, e.g. postgres:15, so aidb can build a matching image when it cannot pull", ref)
	}
	return tag[:end], nil
}

func isLocalEngine(daemonHost string) bool {
	return strings.HasPrefix(daemonHost, "unix://") || strings.HasPrefix(daemonHost, "npipe://")
}
