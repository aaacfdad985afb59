package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/aidb/aidb/orchestrator"
)

func TestUpBothAnswerAndSecondUpIsNoop(t *testing.T) {
	t.Parallel()
	p := newProject(t, "up")

	r := p.aidb("up")
	require.Equal(t, 0, r.code, r.stderr)

	st := p.status()
	require.Len(t, st, 2)
	for _, name := range []string{"rulesdb", "memorydb"} {
		s := st[name]
		assert.Equal(t, "running", s.State, name)
		assert.True(t, s.Ready, name)
		assert.Equal(t, p.name+"-"+name, s.Container)
		assert.Equal(t, p.name+"_"+name+"-data", s.Volume)
		var one int
		require.NoError(t, connect(t, s.URL).QueryRow(t.Context(), "SELECT 1").Scan(&one), name)
		assert.Equal(t, 1, one)
	}
	assert.Equal(t, p.rulesPort, st["rulesdb"].Port)
	assert.Equal(t, p.memPort, st["memorydb"].Port)

	// Every resource carries the three labels.
	ctx := t.Context()
	f := make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name)
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	require.Len(t, cs.Items, 2)
	started := map[string]string{}
	for _, c := range cs.Items {
		assert.Equal(t, orchestrator.RoleDatabase, c.Labels[orchestrator.LabelRole])
		assert.Contains(t, []string{"rulesdb", "memorydb"}, c.Labels[orchestrator.LabelService])
		for _, port := range c.Ports {
			if port.PublicPort != 0 {
				assert.Equal(t, "127.0.0.1", port.IP.String(), "published on loopback only")
			}
		}
		in, err := docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		require.NoError(t, err)
		started[c.ID] = in.Container.State.StartedAt
	}
	vs, err := docker.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	require.NoError(t, err)
	require.Len(t, vs.Items, 2)
	for _, v := range vs.Items {
		assert.Equal(t, orchestrator.RoleData, v.Labels[orchestrator.LabelRole])
		assert.NotEmpty(t, v.Labels[orchestrator.LabelService])
	}
	ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	require.NoError(t, err)
	require.Len(t, ns.Items, 1)
	assert.Equal(t, orchestrator.RoleNetwork, ns.Items[0].Labels[orchestrator.LabelRole])

	// A second up changes nothing: same containers, not restarted.
	r = p.aidb("up")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "starting container")
	cs2, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	require.Len(t, cs2.Items, 2)
	for _, c := range cs2.Items {
		in, err := docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		require.NoError(t, err)
		assert.Equal(t, started[c.ID], in.Container.State.StartedAt, "container %v was not restarted", c.Names)
	}
}

func TestDataSurvivesDownAndUp(t *testing.T) {
	t.Parallel()
	p := newProject(t, "downup")
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	url := p.status()["rulesdb"].URL

	conn := connect(t, url)
	_, err := conn.Exec(t.Context(), "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'survives down')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))

	r := p.aidb("down")
	require.Equal(t, 0, r.code, r.stderr)
	st := p.status()
	assert.Equal(t, "exited", st["rulesdb"].State)
	assert.False(t, st["rulesdb"].Ready)
	assert.Equal(t, "missing", st["memorydb"].State, "down starts nothing")

	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	var note string
	require.NoError(t, connect(t, url).QueryRow(t.Context(), "SELECT note FROM kept WHERE id = 1").Scan(&note))
	assert.Equal(t, "survives down", note)
}

func TestNukeAsksThenRemovesEverythingLabelled(t *testing.T) {
	t.Parallel()
	p := newProject(t, "nuke")
	require.Equal(t, 0, p.aidb("up").code)
	before := p.labelled(t.Context())
	require.Len(t, before, 5, "2 containers, 2 volumes, 1 network: %v", before)

	// No terminal to ask on and no --yes: refused, nothing removed.
	r := p.aidb("nuke")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--yes")
	assert.ElementsMatch(t, before, p.labelled(t.Context()))

	r = p.aidb("nuke", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, p.labelled(t.Context()))
	for _, s := range p.status() {
		assert.Equal(t, "missing", s.State)
	}
}

func TestPortTakenByAnotherProgram(t *testing.T) {
	t.Parallel()
	p := newProject(t, "portprog")
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.rulesPort))
	require.NoError(t, err)
	defer func() { _ = l.Close() }()

	r := p.aidb("up", "rulesdb")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, fmt.Sprintf("host port %d is already taken by another program", p.rulesPort))
	assert.Contains(t, r.stderr, "RULESDB_PORT=")
	assert.Empty(t, p.labelled(t.Context()), "a refused up leaves nothing behind")
}

func TestPortTakenByContainerNamesIt(t *testing.T) {
	t.Parallel()
	p := newProject(t, "portctr")
	holderName := p.name + "-holder"
	port := network.MustParsePort("5432/tcp")
	holder, err := testcontainers.Run(t.Context(), "aidb.local/postgres:15",
		testcontainers.WithName(holderName),
		testcontainers.WithEnv(map[string]string{"POSTGRES_PASSWORD": "holder"}),
		testcontainers.WithExposedPorts("5432/tcp"),
		// Labelled with a project of this run, so the suite's leftover check covers it.
		testcontainers.WithLabels(orchestrator.Labels(p.name+"-holder", "holder", "test")),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port: {{HostPort: strconv.Itoa(p.rulesPort)}}}
		}),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("5432/tcp").WithStartupTimeout(time.Minute)),
	)
	testcontainers.CleanupContainer(t, holder)
	require.NoError(t, err)

	r := p.aidb("up", "rulesdb")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, fmt.Sprintf("host port %d is already taken by container %s", p.rulesPort, holderName))
	assert.Empty(t, p.labelled(t.Context()))
}

func TestContainerThatExitsFailsAtOnceWithLogs(t *testing.T) {
	t.Parallel()
	p := newProject(t, "crash")
	p.writeCompose(`
services:
  rulesdb:
    image: postgres:15
    command: ["postgres", "-c", "no_such_setting=1"]
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["data:/var/lib/postgresql/data"]
  memorydb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
volumes:
  data:
`)
	r := p.aidb("up", "rulesdb", "--timeout", "5m")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "stopped while starting", "failed on the state check, not at the 5 minute deadline")
	assert.Contains(t, r.stderr, `unrecognized configuration parameter "no_such_setting"`, "the last log lines are shown")
	assert.Empty(t, p.labelled(t.Context()), "the failed up removed the container, volume and network it created")
}

func TestUpInterruptedRemovesWhatItCreated(t *testing.T) {
	t.Parallel()
	p := newProject(t, "interrupt")
	// A server that only listens on its socket never answers over TCP, so
	// up is still waiting when it is interrupted.
	p.writeCompose(`
services:
  rulesdb:
    image: postgres:15
    command: ["postgres", "-c", "listen_addresses="]
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["data:/var/lib/postgresql/data"]
  memorydb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
volumes:
  data:
`)
	// Ctrl-C, and SIGHUP (the terminal closed) handled as Ctrl-C is, each
	// with its shell exit code.
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		says string
	}{
		{syscall.SIGINT, 130, "interrupted"},
		{syscall.SIGHUP, 129, "stopped by SIGHUP"},
	} {
		cmd := p.command(t.Context(), "up", "rulesdb", "--timeout", "5m")
		var stderr safeBuffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		// Signal once the container runs, as a person pressing Ctrl-C would.
		waitFor(t, time.Minute, func() bool {
			cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{
				Filters: make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name),
			})
			return err == nil && len(cs.Items) == 1
		})
		require.NoError(t, cmd.Process.Signal(tc.sig))
		select {
		case err := <-done:
			t.Logf("aidb up ended: %v", err) // its exit code is checked below
		case <-time.After(30 * time.Second):
			t.Fatalf("aidb up did not stop within 30 s of %v", tc.sig)
		}
		assert.Equal(t, tc.code, cmd.ProcessState.ExitCode(), stderr.String())
		assert.Contains(t, stderr.String(), tc.says)
		assert.Empty(t, p.labelled(context.WithoutCancel(t.Context())), "%v: what the interrupted up created is removed", tc.sig)
	}
}
