package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// apiImage imports a tiny web server image (./testapp, a static Go
// program, whose serve command serves /www) for the test, and removes it
// afterwards, after the project's containers (an image in use would only
// lose its tag).
func apiImage(t *testing.T, p *project, ref string) {
	t.Helper()
	app, err := os.ReadFile(testAppBin)
	require.NoError(t, err, "the ai-up tests' web server, built by TestMain")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, body []byte) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	add("bin/testapp", 0o755, app)
	add("www/index.html", 0o644, []byte("ok\n"))
	require.NoError(t, tw.Close())
	res, err := docker.ImageImport(t.Context(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{`CMD ["/bin/testapp", "serve", "-p", "8080", "-h", "/www"]`},
	})
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res)
	_ = res.Close()
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		if r := p.run(ctx, "nuke", "--yes", "--no-backup", "--all-volumes"); r.code != 0 {
			t.Errorf("nuke before removing %s: %s", ref, r.stderr)
		}
		for _, img := range []string{p.name + "-web", ref} {
			_, _ = docker.ImageRemove(ctx, img, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	})
}

const appCompose = `
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_USER: rules, POSTGRES_PASSWORD: pw, POSTGRES_DB: rulesdb}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["rules:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD-SHELL", "pg_isready -U rules -d rulesdb"], interval: 1s, retries: 60}
  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
    volumes: ["memory:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD-SHELL", "pg_isready -U memory -d memorydb"], interval: 1s, retries: 60}
  api:
    image: %s
    environment: {GREETING: "${GREETING:-hello}"}
    ports: ["127.0.0.1:${API_PORT}:8080"]
    depends_on:
      rulesdb: {condition: service_healthy}
      memorydb: {condition: service_healthy}
volumes:
  rules:
  memory:
`

func serviceID(t *testing.T, p *project, service string) string {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelService+"="+service)})
	require.NoError(t, err)
	require.Len(t, cs.Items, 1, service)
	return cs.Items[0].ID
}

func TestUpAllStartsTheAPIAfterHealthyDatabases(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upall")
	ref := "aidb-e2e-api:" + p.name
	apiImage(t, p, ref)
	port := freePort(t)
	p.env = append(p.env, fmt.Sprintf("API_PORT=%d", port))
	p.writeCompose(fmt.Sprintf(appCompose, ref))

	r := p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	apiStart := strings.Index(r.stderr, "Container "+p.name+"-api-1: Start")
	require.Positive(t, apiStart, "Compose's progress names the api's container")
	for _, db := range []string{"rulesdb", "memorydb"} {
		ready := strings.Index(r.stderr, db+": ready on")
		assert.True(t, ready >= 0 && ready < apiStart, "%s was ready before the api started:\n%s", db, r.stderr)
	}
	body := httpBody(t, port)
	assert.Equal(t, "ok\n", body, "the api answers on its port")

	r = p.aidb("status", "--json")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, `"service": "api"`)
	assert.Contains(t, r.stdout, `"state": "running"`)

	// A second ai-up changes nothing.
	ids := map[string]string{}
	for _, s := range []string{"rulesdb", "memorydb", "api"} {
		ids[s] = serviceID(t, p, s)
	}
	r = p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "starting container")
	assert.NotContains(t, r.stderr, "Recreate")
	for s, id := range ids {
		assert.Equal(t, id, serviceID(t, p, s), s)
	}

	// A changed environment variable recreates only that service.
	p.env = append(p.env, "GREETING=bye")
	r = p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, ids["api"], serviceID(t, p, "api"), "api recreated")
	assert.Equal(t, ids["rulesdb"], serviceID(t, p, "rulesdb"))
	assert.Equal(t, ids["memorydb"], serviceID(t, p, "memorydb"))

	r = p.aidb("down", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("status", "--json")
	assert.NotContains(t, r.stdout, `"state": "running"`)
}

func TestUpAllRefusalsAndFailures(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upallbad")
	ref := "aidb-e2e-api:" + p.name
	apiImage(t, p, ref)
	dbs := `
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
  memorydb:
    image: postgres:15
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
`
	// A dependency cycle: exit 2, the cycle named.
	p.writeCompose("services:" + dbs + fmt.Sprintf(`
  a: {image: %[1]s, depends_on: [b]}
  b: {image: %[1]s, depends_on: [a]}
`, ref))
	r := p.aidb("up", "--all")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "cycle")
	assert.Empty(t, p.labelled(t.Context()))

	// A service waiting for a database to complete: a database never does.
	p.writeCompose("services:" + dbs + fmt.Sprintf("  a: {image: %s, depends_on: {rulesdb: {condition: service_completed_successfully}}}\n", ref))
	r = p.aidb("up", "--all")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "service a depends on database rulesdb completing successfully")
	assert.Empty(t, p.labelled(t.Context()))

	// An image neither present nor pullable nor buildable: named.
	p.writeCompose("services:" + dbs + "  a: {image: aidb-e2e-missing/api:1}\n")
	r = p.aidb("up", "--all")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "aidb-e2e-missing/api:1")

	// A dependency whose healthcheck never passes.
	p.writeCompose("services:" + dbs + fmt.Sprintf(`
  sick:
    image: %[1]s
    healthcheck: {test: ["CMD", "/bin/testapp", "false"], interval: 1s, retries: 100}
  api:
    image: %[1]s
    depends_on: {sick: {condition: service_healthy}}
`, ref))
	// The databases first, with the default timeout: a busy machine may
	// take more than the 5 s below to initialise them, which is not what
	// this case is about.
	r = p.aidb("up")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("up", "--all", "--timeout", "5s")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "service api (container "+p.name+"-api-1) was created but not started")
	assert.Contains(t, r.stderr, "service sick (container "+p.name+"-sick-1) is not healthy yet")
	assert.Contains(t, r.stderr, "aidb down --all")

	// A service that cannot start: named, with the engine's reason.
	p.writeCompose("services:" + dbs + fmt.Sprintf(`
  crash:
    image: %[1]s
    command: ["/bin/no-such-program"]
`, ref))
	r = p.aidb("up", "--all")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "service crash (container "+p.name+"-crash-1)")
	assert.Contains(t, r.stderr, "/bin/no-such-program")
}

func TestUpAllBuildsAndJoinsNetworks(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upbuild")
	base := "aidb-e2e-api:" + p.name
	apiImage(t, p, base)
	port := freePort(t)
	p.env = append(p.env, fmt.Sprintf("API_PORT=%d", port))
	web := filepath.Join(p.dir, "web")
	require.NoError(t, os.MkdirAll(web, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(web, "Dockerfile"), []byte("FROM "+base+"\nCOPY index.html /www/index.html\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(web, "index.html"), []byte("built\n"), 0o644))
	p.writeCompose(`
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
  memorydb:
    image: postgres:15
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
  web:
    build: ./web
    networks: [front, default]
    ports: ["127.0.0.1:${API_PORT}:8080"]
networks:
  front:
`)
	r := p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "Image "+p.name+"-web: Built", "Compose built the image")
	body := httpBody(t, port)
	assert.Equal(t, "built\n", body, "the image was built from the service's context")
	in, err := docker.ContainerInspect(t.Context(), serviceID(t, p, "web"), client.ContainerInspectOptions{})
	require.NoError(t, err)
	var nets []string
	for n := range in.Container.NetworkSettings.Networks {
		nets = append(nets, n)
	}
	assert.ElementsMatch(t, []string{p.name + "_default", p.name + "_front"}, nets)
}

// httpBody polls http://127.0.0.1:port/ until it answers 200 (30 s at
// most) and returns the body.
func httpBody(t *testing.T, port int) string {
	t.Helper()
	var body string
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	return body
}

// appProfileCompose is a compose file of the kind applications use: an API
// under a profile with init, tmpfs, host-gateway, resource limits, a
// file-based secret and a restart: true dependency on a healthy database.
const appProfileCompose = `
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_USER: rules, POSTGRES_PASSWORD: pw, POSTGRES_DB: rulesdb, RULES_TUNING: "${RULES_TUNING:-a}"}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["rules:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD-SHELL", "pg_isready -U rules -d rulesdb"], interval: 1s, retries: 60}
  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
    volumes: ["memory:/var/lib/postgresql/data"]
%s
volumes:
  rules:
  memory:
secrets:
  apikey:
    file: ./apikey.txt
`

// appAPI is the api service of appProfileCompose (image %[1]s).
const appAPI = `  api:
    image: %[1]s
    profiles: [app]
    init: true
    tmpfs: ["/scratch"]
    extra_hosts: ["host.docker.internal:host-gateway"]
    deploy:
      resources:
        limits: {memory: 64M, cpus: "0.5"}
    secrets: [apikey]
    ports: ["127.0.0.1:${API_PORT}:8080"]
    depends_on:
      rulesdb: {condition: service_healthy, restart: true}
      memorydb: {condition: service_started}
`

// composeContainers lists the containers Compose made for project name.
func composeContainers(t *testing.T, name string) []string {
	t.Helper()
	cs, err := docker.ContainerList(context.WithoutCancel(t.Context()), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", orchestrator.ComposeProjectLabel+"="+name)})
	require.NoError(t, err)
	var out []string
	for _, c := range cs.Items {
		out = append(out, strings.Join(c.Names, ","))
	}
	return out
}

// containerSettings are the settings of the keys, as the engine
// reports them.
type containerSettings struct {
	Init       bool
	Tmpfs      map[string]string
	ExtraHosts []string
	Memory     int64
	NanoCPUs   int64
	Secret     string // the mount at /run/secrets/apikey: source, read-only
}

func settingsOf(t *testing.T, id string) containerSettings {
	t.Helper()
	in, err := docker.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	hc := in.Container.HostConfig
	s := containerSettings{Tmpfs: hc.Tmpfs, ExtraHosts: hc.ExtraHosts, Memory: hc.Memory, NanoCPUs: hc.NanoCPUs}
	if hc.Init != nil {
		s.Init = *hc.Init
	}
	for _, m := range in.Container.Mounts {
		if m.Destination == "/run/secrets/apikey" {
			s.Secret = fmt.Sprintf("%s rw=%t", m.Source, m.RW)
		}
	}
	return s
}

func startedAt(t *testing.T, id string) string {
	t.Helper()
	in, err := docker.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	return in.Container.State.StartedAt
}

// TestUpAllRunsAnApplicationsComposeFile: without its profile the api stays
// down; with COMPOSE_PROFILES it comes up with every setting as Compose
// sets it, the databases untouched; a replaced database restarts it
// (restart: true); down --all and nuke leave nothing of the project.
func TestUpAllRunsAnApplicationsComposeFile(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upapp")
	ref := "aidb-e2e-api:" + p.name
	apiImage(t, p, ref)
	port := freePort(t)
	p.env = append(p.env, fmt.Sprintf("API_PORT=%d", port))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "apikey.txt"), []byte("s3cret\n"), 0o600))
	p.writeCompose(fmt.Sprintf(appProfileCompose, fmt.Sprintf(appAPI, ref)))

	// Without the profile: the databases only.
	r := p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, composeContainers(t, p.name), "api's profile is not enabled: it stays down")
	dbs := map[string][2]string{}
	for _, s := range []string{"rulesdb", "memorydb"} {
		id := serviceID(t, p, s)
		dbs[s] = [2]string{id, startedAt(t, id)}
	}

	// With it (COMPOSE_PROFILES): the api too, the databases untouched.
	p.env = append(p.env, "COMPOSE_PROFILES=app")
	r = p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "ok\n", httpBody(t, port), "the api answers on its port")
	for s, was := range dbs {
		id := serviceID(t, p, s)
		assert.Equal(t, was, [2]string{id, startedAt(t, id)}, "%s: same container, not restarted", s)
	}
	api := serviceID(t, p, "api")
	got := settingsOf(t, api)
	secret, err := filepath.EvalSymlinks(filepath.Join(p.dir, "apikey.txt"))
	require.NoError(t, err)
	assert.Equal(t, containerSettings{
		Init:       true,
		Tmpfs:      map[string]string{"/scratch": ""},
		ExtraHosts: []string{"host.docker.internal:host-gateway"},
		Memory:     64 << 20,
		NanoCPUs:   5e8,
		Secret:     secret + " rw=false",
	}, got)
	out, err := execIn(t, api, "/bin/testapp", "cat", "/run/secrets/apikey")
	require.NoError(t, err)
	assert.Equal(t, "s3cret\n", string(out), "the secret is readable where Compose puts it")
	out, err = execIn(t, api, "/bin/testapp", "nslookup", "rulesdb")
	assert.NoError(t, err, "the api resolves the database by its service name: %s", out)
	in, err := docker.ContainerInspect(t.Context(), api, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for k, v := range map[string]string{orchestrator.LabelProject: p.name, orchestrator.LabelService: "api", orchestrator.LabelRole: orchestrator.RoleService, orchestrator.ComposeProjectLabel: p.name} {
		assert.Equal(t, v, in.Container.Config.Labels[k], k)
	}

	// Debian's docker-compose, where installed, sets the same.
	if dc, err := exec.LookPath("docker-compose"); err == nil {
		dcProject := p.name + "-dc"
		dcDir := filepath.Join(p.dir, "dc")
		require.NoError(t, os.MkdirAll(dcDir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dcDir, "apikey.txt"), []byte("s3cret\n"), 0o600))
		dcFile := filepath.Join(dcDir, "compose.yaml")
		api := strings.Replace(fmt.Sprintf(appAPI, ref), "    depends_on:\n      rulesdb: {condition: service_healthy, restart: true}\n      memorydb: {condition: service_started}\n", "", 1)
		api = strings.Replace(api, "${API_PORT}", "0", 1)
		require.NoError(t, os.WriteFile(dcFile, []byte("version: \"3.9\"\nservices:\n"+api+"secrets:\n  apikey:\n    file: ./apikey.txt\n"), 0o600))
		compose := func(args ...string) {
			cmd := exec.Command(dc, append([]string{"-p", dcProject, "-f", dcFile}, args...)...)
			cmd.Env = append(os.Environ(), "COMPOSE_PROFILES=app")
			b, err := cmd.CombinedOutput()
			require.NoError(t, err, "docker-compose %v: %s", args, b)
		}
		t.Cleanup(func() { compose("down", "--remove-orphans") })
		compose("up", "-d")
		ids := composeContainers(t, dcProject)
		require.Len(t, ids, 1)
		want := settingsOf(t, strings.TrimPrefix(ids[0], "/"))
		dcSecret, err := filepath.EvalSymlinks(filepath.Join(dcDir, "apikey.txt"))
		require.NoError(t, err)
		want.Secret = strings.Replace(want.Secret, dcSecret, secret, 1)
		assert.Equal(t, want, got, "aidb's api is set up as docker-compose sets it up")
	} else {
		t.Log("docker-compose is not installed: no comparison with it")
	}

	// rulesdb replaced (its configuration changed): the api, which depends
	// on it with restart: true, is restarted, not recreated.
	apiStarted := startedAt(t, api)
	p.env = append(p.env, "RULES_TUNING=b")
	r = p.aidb("up", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, dbs["rulesdb"][0], serviceID(t, p, "rulesdb"), "rulesdb replaced")
	assert.Equal(t, api, serviceID(t, p, "api"), "the api's container is kept")
	assert.NotEqual(t, apiStarted, startedAt(t, api), "the api was restarted")
	assert.Contains(t, r.stderr, "restarting api")

	// down --all stops everything; nuke leaves nothing.
	r = p.aidb("down", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	for _, s := range []string{"rulesdb", "memorydb", "api"} {
		in, err := docker.ContainerInspect(t.Context(), serviceID(t, p, s), client.ContainerInspectOptions{})
		require.NoError(t, err)
		assert.False(t, in.Container.State.Running, "%s stopped", s)
	}
	r = p.aidb("nuke", "--yes", "--no-backup")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, p.labelled(t.Context()))
	assert.Empty(t, composeContainers(t, p.name))
}
