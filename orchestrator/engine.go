package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// PingTimeout bounds the first contact with the engine: an unreachable
// engine is reported within it rather than hanging the command.
const PingTimeout = 4 * time.Second

// UnreachableError says the Docker engine did not answer.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Docker engine at %s: is the Docker daemon running? (check with docker version, start it with systemctl start docker or dockerd; DOCKER_HOST selects another engine): %v", e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Connect opens a client for the engine DOCKER_HOST (and DOCKER_API_VERSION,
// DOCKER_CERT_PATH, DOCKER_TLS_VERIFY) names, the local socket by default,
// negotiates the API version and checks that the engine answers within
// PingTimeout. The caller closes the client.
func Connect(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("configure Docker client: %w (check DOCKER_HOST)", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if _, err := cli.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		host := cli.DaemonHost()
		_ = cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{Host: host, Err: err}
	}
	return cli, nil
}

// Importer adapts the moby client's ImageImport to pgimage.Importer.
type Importer struct{ Client *client.Client }

// Import loads tarball as the image ref with the given Dockerfile changes and
// waits for the engine to finish, reporting an error the engine streams back.
func (i Importer) Import(ctx context.Context, tarball io.Reader, ref string, changes []string) error {
	res, err := i.Client.ImageImport(ctx, client.ImageImportSource{Source: tarball, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return err
	}
	defer res.Close()
	return drainJSONStream(res)
}

// drainJSONStream reads an engine progress stream to its end and returns the
// first error it carries.
func drainJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
	}
}
