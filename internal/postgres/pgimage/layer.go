package pgimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Builder builds an image from a build context holding a Dockerfile (the
// engine's build API: the moby client's ImageBuild, adapted by the
// orchestrator), writing the build's output to log.
type Builder interface {
	BuildDockerfile(ctx context.Context, buildContext io.Reader, ref string, log io.Writer) error
}

// AddLayer builds opts.Recipe, a recipe with a Base, as one layer on the
// base's image, which must be present (tagged Base.Tag): apt-get installs
// the recipe's packages from the Debian archive in a build container. It is
// tagged opts.Ref (default Recipe.Tag) and returns that reference. It takes
// as long as apt-get needs (about half a minute here); cancelled, the
// engine stops the build and nothing is tagged.
func AddLayer(ctx context.Context, b Builder, opts Options) (ref string, retErr error) {
	r := opts.Recipe
	if r.Base == nil || len(r.Packages) == 0 {
		return "", fmt.Errorf("build %s: %q is no layered recipe", r.Tag, r.For)
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	ref = opts.Ref
	if ref == "" {
		ref = r.Tag
	}
	logPath := LogPath(ref)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("build %s: create its log: %w", ref, err)
	}
	defer func() { _ = logFile.Close() }()
	mirror := opts.Mirror
	if mirror == "" {
		mirror = os.Getenv("AIDB_DEBIAN_MIRROR")
	}
	dockerfile, err := layerDockerfile(r, mirror)
	if err != nil {
		return "", err
	}
	buildContext, err := tarOf("Dockerfile", dockerfile)
	if err != nil {
		return "", err
	}
	start := time.Now()
	progress(fmt.Sprintf("building %s: %s with %s installed (log: %s)", ref, r.Base.Tag, strings.Join(r.Packages, ", "), logPath))
	if err := b.BuildDockerfile(ctx, buildContext, ref, logFile); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("build %s on %s: %w\n(the whole build log is in %s)", ref, r.Base.Tag, err, logPath)
	}
	progress(fmt.Sprintf("building %s: done (%s)", ref, time.Since(start).Round(time.Second)))
	return ref, nil
}

// layerDockerfile installs r's packages on r.Base's image in one layer,
// leaving no package lists or archives behind. With a mirror, apt reads
// that archive instead of the one the base was bootstrapped from.
func layerDockerfile(r Recipe, mirror string) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", r.Base.Tag)
	run := "set -e; "
	if mirror != "" {
		if strings.ContainsAny(mirror, " '\"\\\n$`") {
			return nil, fmt.Errorf("build %s: AIDB_DEBIAN_MIRROR %q is no archive URL", r.Tag, mirror)
		}
		run += fmt.Sprintf("echo 'deb %s %s main' > /etc/apt/sources.list; ", mirror, r.Suite)
	}
	run += "apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends " + strings.Join(r.Packages, " ") +
		"; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /usr/share/doc/*; mkdir -p /var/lib/apt/lists/partial"
	fmt.Fprintf(&b, "RUN %s\n", run)
	fmt.Fprintf(&b, "LABEL aidb.image=%s aidb.postgres.major=%s aidb.debian=%s\n", r.Name, r.Major, r.Suite)
	return []byte(b.String()), nil
}

// tarOf is a tar archive holding one file.
func tarOf(name string, content []byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
