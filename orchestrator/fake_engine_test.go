package orchestrator

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// fakeEngine is an in-memory engine: containers, volumes, networks and
// images as the lifecycle sees them through Docker. Its databases answer
// SELECT 1 (ping) when their container runs and publishes the port asked
// for.
type fakeEngine struct {
	mu  sync.Mutex
	seq int

	containers map[string]*fakeContainer // by ID
	volumes    map[string]map[string]string
	networks   map[string]network.Summary // by ID
	images     map[string]bool
	// pullable images are present once pulled; the others fail to pull.
	pullable map[string]bool

	// onStart, if set, runs after a container starts (under the lock):
	// a test makes it crash, refuse logins, or never answer.
	onStart func(c *fakeContainer)
	// removeErr makes ContainerRemove of an ID fail.
	removeErr map[string]error
	// onInspect, if set, runs on every ContainerInspect (under the lock).
	onInspect func(c *fakeContainer)

	// dataMajor is the PG_VERSION in a volume's data directory, by volume
	// name (none: an empty volume).
	dataMajor map[string]string

	// calls counts the calls by method name.
	calls map[string]int
	pulls []string
}

// fakeContainer is a container of the fake engine.
type fakeContainer struct {
	id, name string
	cfg      *container.Config
	host     *container.HostConfig
	state    container.ContainerState
	exitCode int
	health   *container.Health
	logs     string
	// silent databases never answer SELECT 1; refuse ones refuse the
	// login (SQLSTATE 28P01).
	silent, refuse bool
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		containers: map[string]*fakeContainer{},
		volumes:    map[string]map[string]string{},
		networks:   map[string]network.Summary{},
		images:     map[string]bool{},
		pullable:   map[string]bool{},
		removeErr:  map[string]error{},
		dataMajor:  map[string]string{},
		calls:      map[string]int{},
	}
}

func (f *fakeEngine) call(name string) {
	f.calls[name]++
}

// A remote engine: Up does not try to bind host ports on this machine.
func (f *fakeEngine) DaemonHost() string { return "tcp://127.0.0.1:2375" }

// matches applies the label and name filters the lifecycle uses.
func matches(fl client.Filters, name string, labels map[string]string) bool {
	for term := range fl["label"] {
		k, v, hasValue := strings.Cut(term, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	for n := range fl["name"] {
		if !strings.Contains(name, n) {
			return false
		}
	}
	return true
}

func (f *fakeEngine) summary(c *fakeContainer) container.Summary {
	s := container.Summary{ID: c.id, Names: []string{"/" + c.name}, Image: c.cfg.Image, Labels: c.cfg.Labels, State: c.state}
	if c.state == container.StateRunning {
		for port, bs := range c.host.PortBindings {
			for _, b := range bs {
				p, _ := strconv.Atoi(b.HostPort)
				s.Ports = append(s.Ports, container.PortSummary{PrivatePort: port.Num(), PublicPort: uint16(p)})
			}
		}
	}
	if c.health != nil {
		s.Health = &container.HealthSummary{Status: c.health.Status}
	}
	return s
}

// find resolves an ID or a name.
func (f *fakeEngine) find(idOrName string) (*fakeContainer, error) {
	if c, ok := f.containers[idOrName]; ok {
		return c, nil
	}
	for _, c := range f.containers {
		if c.name == idOrName {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no such container %s: %w", idOrName, cerrdefs.ErrNotFound)
}

func (f *fakeEngine) ContainerList(_ context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerList")
	var res client.ContainerListResult
	for _, id := range slices.Sorted(maps.Keys(f.containers)) {
		c := f.containers[id]
		if !o.All && c.state != container.StateRunning {
			continue
		}
		if matches(o.Filters, c.name, c.cfg.Labels) {
			res.Items = append(res.Items, f.summary(c))
		}
	}
	return res, nil
}

func (f *fakeEngine) ContainerCreate(_ context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerCreate")
	if !f.images[o.Config.Image] {
		return client.ContainerCreateResult{}, fmt.Errorf("no such image %s: %w", o.Config.Image, cerrdefs.ErrNotFound)
	}
	if _, err := f.find(o.Name); err == nil {
		return client.ContainerCreateResult{}, fmt.Errorf("the name %s is in use: %w", o.Name, cerrdefs.ErrConflict)
	}
	f.seq++
	id := fmt.Sprintf("%064x", f.seq)
	f.containers[id] = &fakeContainer{id: id, name: o.Name, cfg: o.Config, host: o.HostConfig, state: container.StateCreated}
	return client.ContainerCreateResult{ID: id}, nil
}

// CopyFromContainer reads PG_VERSION of the volume the container mounts at
// the data directory's folder; anything else is not found.
func (f *fakeEngine) CopyFromContainer(_ context.Context, id string, o client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("CopyFromContainer")
	c, err := f.find(id)
	if err != nil {
		return client.CopyFromContainerResult{}, err
	}
	for _, m := range c.host.Mounts {
		v, ok := f.dataMajor[m.Source]
		if !ok || o.SourcePath != m.Target+"/PG_VERSION" {
			continue
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "PG_VERSION", Mode: 0o600, Size: int64(len(v) + 1)})
		_, _ = tw.Write([]byte(v + "\n"))
		_ = tw.Close()
		return client.CopyFromContainerResult{Content: io.NopCloser(&buf)}, nil
	}
	return client.CopyFromContainerResult{}, fmt.Errorf("no %s in container %s: %w", o.SourcePath, id, cerrdefs.ErrNotFound)
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerStart")
	c, err := f.find(id)
	if err != nil {
		return client.ContainerStartResult{}, err
	}
	c.state, c.exitCode = container.StateRunning, 0
	if f.onStart != nil {
		f.onStart(c)
	}
	return client.ContainerStartResult{}, nil
}

func (f *fakeEngine) ContainerStop(_ context.Context, id string, _ client.ContainerStopOptions) (client.ContainerStopResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerStop")
	c, err := f.find(id)
	if err != nil {
		return client.ContainerStopResult{}, err
	}
	if c.state == container.StateRunning {
		c.state, c.exitCode = container.StateExited, 0
	}
	return client.ContainerStopResult{}, nil
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerRemove")
	if err := f.removeErr[id]; err != nil {
		return client.ContainerRemoveResult{}, err
	}
	c, err := f.find(id)
	if err != nil {
		return client.ContainerRemoveResult{}, err
	}
	delete(f.containers, c.id)
	return client.ContainerRemoveResult{}, nil
}

func (f *fakeEngine) ContainerRename(_ context.Context, id string, o client.ContainerRenameOptions) (client.ContainerRenameResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerRename")
	c, err := f.find(id)
	if err != nil {
		return client.ContainerRenameResult{}, err
	}
	if other, err := f.find(o.NewName); err == nil && other != c {
		return client.ContainerRenameResult{}, fmt.Errorf("the name %s is in use: %w", o.NewName, cerrdefs.ErrConflict)
	}
	c.name = o.NewName
	return client.ContainerRenameResult{}, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerInspect")
	c, err := f.find(id)
	if err != nil {
		return client.ContainerInspectResult{}, err
	}
	if f.onInspect != nil {
		f.onInspect(c)
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{
		ID: c.id, Name: "/" + c.name, Image: c.cfg.Image, Config: c.cfg, HostConfig: c.host,
		State: &container.State{Status: c.state, Running: c.state == container.StateRunning, ExitCode: c.exitCode, Health: c.health},
	}}, nil
}

// ContainerLogs frames the container's logs as the engine does (stdcopy).
func (f *fakeEngine) ContainerLogs(_ context.Context, id string, _ client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ContainerLogs")
	c, err := f.find(id)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if c.logs != "" {
		hdr := [8]byte{1}
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(c.logs)))
		b.Write(hdr[:])
		b.WriteString(c.logs)
	}
	return io.NopCloser(&b), nil
}

func (f *fakeEngine) VolumeList(_ context.Context, o client.VolumeListOptions) (client.VolumeListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("VolumeList")
	var res client.VolumeListResult
	for _, name := range slices.Sorted(maps.Keys(f.volumes)) {
		if matches(o.Filters, name, f.volumes[name]) {
			res.Items = append(res.Items, volume.Volume{Name: name, Labels: f.volumes[name]})
		}
	}
	return res, nil
}

func (f *fakeEngine) VolumeCreate(_ context.Context, o client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("VolumeCreate")
	f.volumes[o.Name] = o.Labels
	return client.VolumeCreateResult{Volume: volume.Volume{Name: o.Name, Labels: o.Labels}}, nil
}

func (f *fakeEngine) VolumeInspect(_ context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("VolumeInspect")
	labels, ok := f.volumes[name]
	if !ok {
		return client.VolumeInspectResult{}, fmt.Errorf("no such volume %s: %w", name, cerrdefs.ErrNotFound)
	}
	return client.VolumeInspectResult{Volume: volume.Volume{Name: name, Labels: labels}}, nil
}

func (f *fakeEngine) VolumeRemove(_ context.Context, name string, _ client.VolumeRemoveOptions) (client.VolumeRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("VolumeRemove")
	if _, ok := f.volumes[name]; !ok {
		return client.VolumeRemoveResult{}, fmt.Errorf("no such volume %s: %w", name, cerrdefs.ErrNotFound)
	}
	delete(f.volumes, name)
	return client.VolumeRemoveResult{}, nil
}

func (f *fakeEngine) NetworkList(_ context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("NetworkList")
	var res client.NetworkListResult
	for _, id := range slices.Sorted(maps.Keys(f.networks)) {
		n := f.networks[id]
		if matches(o.Filters, n.Name, n.Labels) {
			res.Items = append(res.Items, n)
		}
	}
	return res, nil
}

func (f *fakeEngine) NetworkCreate(_ context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("NetworkCreate")
	for _, n := range f.networks {
		if n.Name == name {
			return client.NetworkCreateResult{}, fmt.Errorf("network %s exists: %w", name, cerrdefs.ErrConflict)
		}
	}
	f.seq++
	id := fmt.Sprintf("net%d", f.seq)
	f.networks[id] = network.Summary{Network: network.Network{ID: id, Name: name, Labels: o.Labels}}
	return client.NetworkCreateResult{ID: id}, nil
}

func (f *fakeEngine) NetworkRemove(_ context.Context, idOrName string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("NetworkRemove")
	for id, n := range f.networks {
		if id == idOrName || n.Name == idOrName {
			delete(f.networks, id)
			return client.NetworkRemoveResult{}, nil
		}
	}
	return client.NetworkRemoveResult{}, fmt.Errorf("no such network %s: %w", idOrName, cerrdefs.ErrNotFound)
}

func (f *fakeEngine) NetworkConnect(context.Context, string, client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("NetworkConnect")
	return client.NetworkConnectResult{}, nil
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ImageInspect")
	if !f.images[ref] {
		return client.ImageInspectResult{}, fmt.Errorf("no such image %s: %w", ref, cerrdefs.ErrNotFound)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: "sha256:" + ref}}, nil
}

func (f *fakeEngine) ImagePull(_ context.Context, ref string, _ client.ImagePullOptions) (client.ImagePullResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("ImagePull")
	f.pulls = append(f.pulls, ref)
	if !f.pullable[ref] {
		return nil, fmt.Errorf("pull access denied for %s: no registry here", ref)
	}
	f.images[ref] = true
	return pulled{}, nil
}

// pulled is a finished pull.
type pulled struct{}

func (pulled) Read([]byte) (int, error)   { return 0, io.EOF }
func (pulled) Close() error               { return nil }
func (pulled) Wait(context.Context) error { return nil }
func (pulled) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(func(jsonstream.Message, error) bool) {}
}

var errNotFaked = errors.New("not in the fake engine")

func (f *fakeEngine) ImageRemove(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	return client.ImageRemoveResult{}, errNotFaked
}

func (f *fakeEngine) ImageBuild(context.Context, io.Reader, client.ImageBuildOptions) (client.ImageBuildResult, error) {
	return client.ImageBuildResult{}, errNotFaked
}

func (f *fakeEngine) ImageImport(context.Context, client.ImageImportSource, string, client.ImageImportOptions) (client.ImageImportResult, error) {
	return nil, errNotFaked
}

// ping answers SELECT 1 for the running container that publishes the
// URL's port.
func (f *fakeEngine) ping(_ context.Context, connString string) error {
	u, err := url.Parse(connString)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.state != container.StateRunning || c.silent {
			continue
		}
		for _, bs := range c.host.PortBindings {
			for _, b := range bs {
				if b.HostPort != u.Port() {
					continue
				}
				if c.refuse {
					return &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"}
				}
				return nil
			}
		}
	}
	return fmt.Errorf("dial %s: connection refused", u.Host)
}

// byName is the container of that name, or nil.
func (f *fakeEngine) byName(name string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, _ := f.find(name)
	return c
}

// names lists the containers' names, sorted.
func (f *fakeEngine) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.containers {
		out = append(out, c.name)
	}
	slices.Sort(out)
	return out
}
