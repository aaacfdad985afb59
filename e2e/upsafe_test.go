package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// runningRulesdb brings rulesdb up with 25 rows in a table and returns its
// URL (with the password it was initialised with) and container ID.
func runningRulesdb(t *testing.T, p *project) (url, id string) {
	t.Helper()
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	url = p.status()["rulesdb"].URL
	conn := connect(t, url)
	_, err := conn.Exec(t.Context(), "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 25)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	return url, containerID(t, p.name+"-rulesdb")
}

func containerID(t *testing.T, name string) string {
	t.Helper()
	in, err := docker.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
	require.NoError(t, err, "container %s", name)
	return in.Container.ID
}

// assertRunsAsBefore checks that rulesdb runs in container id, answers on
// url (its old port and password) and holds its 25 rows.
func assertRunsAsBefore(t *testing.T, p *project, url, id string) {
	t.Helper()
	in, err := docker.ContainerInspect(t.Context(), p.name+"-rulesdb", client.ContainerInspectOptions{})
	require.NoError(t, err, "rulesdb's container is there under its name")
	assert.Equal(t, id, in.Container.ID, "the same container, not a new one")
	assert.True(t, in.Container.State.Running, "rulesdb's container runs")
	var n int
	require.NoError(t, connect(t, url).QueryRow(t.Context(), "SELECT count(*) FROM kept").Scan(&n), "rulesdb answers on its old port with its old password")
	assert.Equal(t, 25, n)
	assert.Empty(t, previousContainers(t, p), "no container is left set aside")
}

// previousContainers lists the project's containers set aside by a
// replacement (<name>-aidb-previous).
func previousContainers(t *testing.T, p *project) []string {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name)})
	require.NoError(t, err)
	var out []string
	for _, c := range cs.Items {
		for _, n := range c.Names {
			if n == "/"+p.name+"-rulesdb-aidb-previous" || n == "/"+p.name+"-memorydb-aidb-previous" {
				out = append(out, n)
			}
		}
	}
	return out
}

func TestUpOntoATakenPortKeepsTheRunningDatabase(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafeport")
	url, id := runningRulesdb(t, p)

	// Another program holds the port rulesdb is asked to move to.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	taken := l.Addr().(*net.TCPAddr).Port
	base := p.env
	p.env = append(base, "RULESDB_PORT="+strconv.Itoa(taken))

	r := p.aidb("up", "rulesdb")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, fmt.Sprintf("host port %d is already taken by another program", taken))
	assert.Contains(t, r.stderr, "rulesdb is running as before")
	assert.NotContains(t, r.stderr, "replacing container", "refused before the running container was touched")
	p.env = base
	assertRunsAsBefore(t, p, url, id)
	assert.Equal(t, p.rulesPort, p.status()["rulesdb"].Port)

	// Once the port is free, the same up moves rulesdb there: a new
	// container on the same volume, and the old one gone.
	free := freePort(t)
	p.env = append(base, "RULESDB_PORT="+strconv.Itoa(free))
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "replacing container")
	st := p.status()["rulesdb"]
	assert.Equal(t, free, st.Port)
	assert.NotEqual(t, id, containerID(t, p.name+"-rulesdb"), "replaced")
	var n int
	require.NoError(t, connect(t, st.URL).QueryRow(t.Context(), "SELECT count(*) FROM kept").Scan(&n))
	assert.Equal(t, 25, n, "the volume came along")
	assert.Empty(t, previousContainers(t, p))
}

func TestUpWithAChangedPasswordNamesTheAuthFailureAndKeepsTheDatabase(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafepw")
	url, id := runningRulesdb(t, p)

	const secret = "zq-new-secret-91"
	base := p.env
	p.env = append(base, "RULESDB_PASSWORD="+secret)
	start := time.Now()
	r := p.aidb("up", "rulesdb") // the default ready timeout: 60 s
	elapsed := time.Since(start)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Less(t, elapsed, 30*time.Second, "a refused login fails at once, not at the ready timeout")
	assert.Contains(t, r.stderr, "rulesdb: authentication failed")
	assert.Contains(t, r.stderr, "SQLSTATE 28P01")
	assert.Contains(t, r.stderr, "keeps the user, password and database it was initialised with")
	assert.Contains(t, r.stderr, "put back the old value of RULESDB_PASSWORD")
	assert.Contains(t, r.stderr, "ALTER ROLE rules PASSWORD")
	assert.Contains(t, r.stderr, "rulesdb is running as before")
	assert.NotContains(t, r.stderr, "raise ready_timeout", "not mistaken for a slow start")
	assert.NotContains(t, r.stderr, secret, "the password is never printed")
	assert.NotContains(t, r.stderr, "rules-local-dev", "the password is never printed")
	p.env = base
	assertRunsAsBefore(t, p, url, id)
}

// rulesdbCompose is a compose file for rulesdb (and a memorydb); its %s
// takes more keys of the rulesdb service (a command).
const rulesdbCompose = `
services:
  rulesdb:
    image: postgres:15
%s    environment:
      POSTGRES_USER: rules
      POSTGRES_PASSWORD: pw
      POSTGRES_DB: rulesdb
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["data:/var/lib/postgresql/data"]
  memorydb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
volumes:
  data:
`

func TestUpWhoseNewContainerCrashesPutsTheOldOneBack(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafecrash")
	p.writeCompose(fmt.Sprintf(rulesdbCompose, ""))
	url, id := runningRulesdb(t, p)

	p.writeCompose(fmt.Sprintf(rulesdbCompose, `    command: ["postgres", "-c", "no_such_setting=1"]
`))
	// nuke's safety backup brings the database up with the file's
	// configuration: the cleanup gets the one it ran with.
	t.Cleanup(func() { p.writeCompose(fmt.Sprintf(rulesdbCompose, "")) })
	r := p.aidb("up", "rulesdb", "--timeout", "5m")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "stopped while starting")
	assert.Contains(t, r.stderr, `unrecognized configuration parameter "no_such_setting"`)
	assert.Contains(t, r.stderr, "rulesdb is running as before")
	assert.NotContains(t, r.stderr, "docker logs", "the crashed container is gone; its name is the old one's again")
	assertRunsAsBefore(t, p, url, id)
}

func TestUpInterruptedDuringAReplacementPutsTheOldOneBack(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafeint")
	p.writeCompose(fmt.Sprintf(rulesdbCompose, ""))
	url, id := runningRulesdb(t, p)

	// The new configuration only listens on its socket: the new container
	// never answers over TCP, so up is still waiting when interrupted.
	p.writeCompose(fmt.Sprintf(rulesdbCompose, `    command: ["postgres", "-c", "listen_addresses="]
`))
	t.Cleanup(func() { p.writeCompose(fmt.Sprintf(rulesdbCompose, "")) })
	cmd := p.command(t.Context(), "up", "rulesdb", "--timeout", "5m")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, time.Minute, func() bool {
		return len(previousContainers(t, p)) == 1 && strings.Contains(stderr.String(), "waiting for SELECT 1")
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-done:
		t.Logf("aidb up ended: %v", err) // its exit code is checked below
	case <-time.After(90 * time.Second):
		t.Fatal("aidb up did not stop within 90 s of SIGINT")
	}
	t.Logf("aidb up rulesdb, interrupted:\n%s", stderr.String())
	assert.Equal(t, 130, cmd.ProcessState.ExitCode())
	assert.Contains(t, stderr.String(), "interrupted")
	assertRunsAsBefore(t, p, url, id)
}

func TestUpClearsWhatAnInterruptedReplacementLeft(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafeleft")
	url, id := runningRulesdb(t, p)
	ctx := t.Context()
	name := p.name + "-rulesdb"
	previous := name + "-aidb-previous"

	// aidb killed after setting the old container aside, before the new
	// one existed: the database has only its previous container.
	timeout := 30
	_, err := docker.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	require.NoError(t, err)
	_, err = docker.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: previous})
	require.NoError(t, err)
	st := p.status()["rulesdb"]
	assert.Equal(t, previous, st.Container, "status shows the container set aside rather than nothing")
	assert.Equal(t, "exited", st.State)

	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "putting back container "+name)
	assertRunsAsBefore(t, p, url, id)

	// aidb killed once the new container existed: the one set aside is
	// removed, the current one left alone.
	in, err := docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	createPrevious := func() {
		t.Helper()
		res, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:   previous,
			Config: &container.Config{Image: in.Container.Config.Image, Labels: orchestrator.Labels(p.name, "rulesdb", orchestrator.RoleDatabase)},
		})
		require.NoError(t, err)
		t.Cleanup(func() {
			_, _ = docker.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true})
		})
	}
	createPrevious()
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "removing "+previous)
	assert.NotContains(t, r.stderr, "starting container", "the current container was left alone")
	assertRunsAsBefore(t, p, url, id)

	// A container set aside never stops nuke from removing everything
	// labelled.
	createPrevious()
	r = p.aidb("nuke", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, p.labelled(ctx))
}

func TestUpWithAPortVariableThatIsNoNumberExits2(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafeabc")
	t.Cleanup(func() { p.env = nil }) // before newProject's nuke
	p.env = append(p.env, "RULESDB_PORT=abc")
	r := p.aidb("up")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, `RULESDB_PORT="abc" gives no host port`)
	assert.Contains(t, r.stderr, "service rulesdb publishes")
	assert.Contains(t, r.stderr, "set RULESDB_PORT to a free port number")
	assert.Empty(t, p.labelled(t.Context()), "refused before the engine was touched")
}

// TestNukeAfterAChangedPasswordBacksUpWhatIsThere: the compose settings
// changed (another password) since rulesdb's container was created. nuke's
// safety backup reads the data as the container runs it, instead of
// refusing (which left --no-backup, and no backup, as the way out), and
// the backup restores onto a database made with the new password.
func TestNukeAfterAChangedPasswordBacksUpWhatIsThere(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafenuke")
	_, _ = runningRulesdb(t, p)
	p.env = append(p.env, "RULESDB_PASSWORD=zq-new-secret-92")

	r := p.aidb("nuke", "--yes", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: safety backup in ")
	assert.NotContains(t, r.stderr, "zq-new-secret-92")
	assert.NotContains(t, r.stderr, "rules-local-dev")
	_, err := docker.ContainerInspect(t.Context(), p.name+"-rulesdb", client.ContainerInspectOptions{})
	require.Error(t, err, "the container is removed")

	var list struct {
		Backups []struct {
			File   string `json:"file"`
			Safety *struct {
				Command string `json:"command"`
			} `json:"safety"`
		} `json:"backups"`
	}
	l := p.aidb("list", "--json")
	require.Equal(t, 0, l.code, l.stderr)
	require.NoError(t, json.Unmarshal([]byte(l.stdout), &list))
	require.Len(t, list.Backups, 1, l.stdout)
	require.NotNil(t, list.Backups[0].Safety)
	assert.Equal(t, "aidb nuke", list.Backups[0].Safety.Command)

	// A new rulesdb with the new password takes the safety backup back.
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	rr := p.aidb("restore", "--yes", "rulesdb", "--", list.Backups[0].File)
	require.Equal(t, 0, rr.code, rr.stderr)
	var n int
	require.NoError(t, connect(t, p.status()["rulesdb"].URL).QueryRow(t.Context(), "SELECT count(*) FROM kept").Scan(&n))
	assert.Equal(t, 25, n, "the rows the safety backup kept")
}

// TestOperationsWithAChangedPasswordNameTheRefusedLogin: the server is up
// and answers, but refuses the compose file's (changed) password. backup
// and migrate say so, naming the variable, rather than "rulesdb is not
// up: run ai-db-up" (which would not help).
func TestOperationsWithAChangedPasswordNameTheRefusedLogin(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafelogin")
	_, _ = runningRulesdb(t, p)
	base := p.env
	p.env = append(base, "RULESDB_PASSWORD=zq-new-secret-93")
	for _, args := range [][]string{{"backup", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		assert.Equal(t, 1, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "rulesdb: authentication failed", "%v", args)
		assert.Contains(t, r.stderr, "RULESDB_PASSWORD", "%v", args)
		assert.NotContains(t, r.stderr, "is not up", "%v", args)
		assert.NotContains(t, r.stderr, "zq-new-secret-93")
	}
	p.env = base
}

// TestADatabaseClosedToConnectionsIsNamedWithTheFix: a restore killed in
// the instant of its swap leaves the database closed to connections
// (ALLOW_CONNECTIONS false). up fails at once (not after the 60 s ready
// timeout) and backup fails, both naming the cause and the command that
// reopens it; that command works.
func TestADatabaseClosedToConnectionsIsNamedWithTheFix(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafeclosed")
	url, _ := runningRulesdb(t, p)
	admin := strings.Replace(url, "/rulesdb?", "/postgres?", 1)
	_, err := connect(t, admin).Exec(t.Context(), "ALTER DATABASE rulesdb ALLOW_CONNECTIONS false")
	require.NoError(t, err)

	r := p.aidb("backup", "rulesdb")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: the database rulesdb does not accept connections")
	start := time.Now()
	r = p.aidb("up", "rulesdb")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Less(t, time.Since(start), 30*time.Second, "no use waiting: it stays closed")
	fix := "docker exec " + p.name + "-rulesdb psql -U rules -d postgres -c 'ALTER DATABASE \"rulesdb\" ALLOW_CONNECTIONS true'"
	assert.Contains(t, r.stderr, fix)

	_, err = execIn(t, p.name+"-rulesdb", "psql", "-U", "rules", "-d", "postgres", "-c", `ALTER DATABASE "rulesdb" ALLOW_CONNECTIONS true`)
	require.NoError(t, err, "the command the message gives")
	r = p.aidb("backup", "rulesdb")
	assert.Equal(t, 0, r.code, r.stderr)
}

// TestNukeOfAStoppedDatabaseWhosePortIsTakenSaysWhatHelps: nuke starts a
// stopped database as it is for its safety backup; another program holds
// its port. The advice is to free the port or move the database first
// (RULESDB_PORT alone changes nothing for a container started as it is).
func TestNukeOfAStoppedDatabaseWhosePortIsTakenSaysWhatHelps(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upsafestopped")
	url, id := runningRulesdb(t, p)
	require.Equal(t, 0, p.aidb("down", "rulesdb").code)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.rulesPort))
	require.NoError(t, err)

	r := p.aidb("nuke", "--yes", "rulesdb")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, fmt.Sprintf("host port %d, which its container was created with, is already taken", p.rulesPort))
	assert.Contains(t, r.stderr, "RULESDB_PORT=<port> aidb up rulesdb")
	assert.Contains(t, r.stderr, "nothing was removed")
	require.NoError(t, l.Close())
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	assertRunsAsBefore(t, p, url, id)
}
