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
// negotiates the API version (the client does by default) and checks that
// the engine answers within PingTimeout. The caller closes the client.
func Connect(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
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

// Docker is the Docker engine calls the lifecycle makes: images, the
// project's networks and volumes, its containers and their logs. The moby
// client (*client.Client) satisfies it; unit tests use an in-memory fake.
type Docker interface {
	DaemonHost() string

	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerRename(ctx context.Context, id string, options client.ContainerRenameOptions) (client.ContainerRenameResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	CopyFromContainer(ctx context.Context, id string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error)

	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	VolumeCreate(ctx context.Context, options client.VolumeCreateOptions) (client.VolumeCreateResult, error)
	VolumeInspect(ctx context.Context, name string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	VolumeRemove(ctx context.Context, name string, options client.VolumeRemoveOptions) (client.VolumeRemoveResult, error)

	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkCreate(ctx context.Context, name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	NetworkRemove(ctx context.Context, id string, options client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	NetworkConnect(ctx context.Context, id string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)

	ImageInspect(ctx context.Context, ref string, options ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImagePull(ctx context.Context, ref string, options client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageRemove(ctx context.Context, ref string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageImport(ctx context.Context, source client.ImageImportSource, ref string, options client.ImageImportOptions) (client.ImageImportResult, error)
}

// The moby client is the engine aidb runs on.
var _ Docker = (*client.Client)(nil)

// importer adapts the engine's ImageImport to pgimage.Importer.
type importer struct{ e Docker }

// Import loads tarball as the image ref with the given Dockerfile changes and
// waits for the engine to finish, reporting an error the engine streams back.
func (i importer) Import(ctx context.Context, tarball io.Reader, ref string, changes []string) error {
	res, err := i.e.ImageImport(ctx, client.ImageImportSource{Source: tarball, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return err
	}
	defer func() { _ = res.Close() }()
	return drainJSONStream(res)
}

// builder adapts the engine's ImageBuild to pgimage.Builder.
type builder struct{ e Docker }

// BuildDockerfile builds the Dockerfile of buildContext as ref (the classic
// builder: the FROM image is local, nothing is pulled), intermediate
// containers removed even on failure, and writes the build's output to log.
func (b builder) BuildDockerfile(ctx context.Context, buildContext io.Reader, ref string, log io.Writer) error {
	res, err := b.e.ImageBuild(ctx, buildContext, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	return copyJSONStream(res.Body, log)
}

// drainJSONStream reads an engine progress stream to its end and returns the
// first error it carries.
func drainJSONStream(r io.Reader) error { return copyJSONStream(r, io.Discard) }

// copyJSONStream reads an engine progress stream to its end, writing its
// text (a build's output) to w, and returns the first error it carries.
func copyJSONStream(r io.Reader, w io.Writer) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Stream != "" {
			_, _ = io.WriteString(w, m.Stream)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
	}
}
