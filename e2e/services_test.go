package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// apiImage imports a tiny web server image (Debian's static busybox, whose
// httpd serves /www) for the test, and removes it afterwards, after the
// project's containers (an image in use would only lose its tag).
func apiImage(t *testing.T, p *project, ref string) {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err, "the test needs busybox-static (apt-get install busybox-static)")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, body []byte) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	add("bin/busybox", 0o755, busybox)
	add("www/index.html", 0o644, []byte("ok\n"))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "bin/sh", Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777}))
	require.NoError(t, tw.Close())
	res, err := docker.ImageImport(t.Context(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{`CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]`},
	})
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res)
	res.Close()
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
	apiStart := strings.Index(r.stderr, "api: starting container")
	require.Positive(t, apiStart)
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

	// A key that changes behaviour and is not supported: named.
	p.writeCompose("services:" + dbs + fmt.Sprintf("  a: {image: %s, privileged: true}\n", ref))
	r = p.aidb("up", "--all")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "service a uses privileged")

	// An image neither present nor pullable nor buildable: named.
	p.writeCompose("services:" + dbs + "  a: {image: aidb-e2e-missing/api:1}\n")
	r = p.aidb("up", "--all")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "aidb-e2e-missing/api:1")

	// A dependency whose healthcheck never passes.
	p.writeCompose("services:" + dbs + fmt.Sprintf(`
  sick:
    image: %[1]s
    healthcheck: {test: ["CMD", "/bin/busybox", "false"], interval: 1s, retries: 100}
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
	assert.Contains(t, r.stderr, "api waits for sick, which did not become healthy within 5s")
	assert.Contains(t, r.stderr, "aidb down --all")
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
	assert.Contains(t, r.stderr, "web: building "+p.name+"-web")
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
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	return body
}
