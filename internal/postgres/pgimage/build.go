// Package pgimage builds PostgreSQL images from Debian's packages, for
// machines that run a Docker engine but reach no container registry.
//
// Each image reference it can stand in for has a Recipe (recipe.go). A base
// image is a debootstrap of the recipe's Debian release with its packages,
// imported with `docker import`, and an entrypoint that honours the official
// postgres image's contract (see entrypoint.sh); an image such as pgvector's
// is a base image plus one layer of packages (AddLayer), so both share one
// debootstrap.
package pgimage

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

//go:embed entrypoint.sh
var entrypoint []byte

// LocalRepository is the repository local builds are tagged under:
// aidb.local/postgres:<major>. The ".local" host can never be pulled from, so
// the tag cannot be confused with a registry image.
const LocalRepository = "aidb.local/postgres"

// Tag is the image reference a local build of the given major gets.
func Tag(major string) string { return LocalRepository + ":" + major }

// Importer loads a root filesystem tarball as an image: the one engine call a
// build needs (the moby client's ImageImport, adapted by the orchestrator).
type Importer interface {
	Import(ctx context.Context, tarball io.Reader, ref string, changes []string) error
}

// Options configures a build. Zero values take the host's settings.
type Options struct {
	// Recipe is what to build (RecipeFor). Required.
	Recipe Recipe
	// Mirror is the Debian archive URL; default: AIDB_DEBIAN_MIRROR, else the
	// first archive the host's apt sources name for the recipe's release,
	// else the one they name for the host's own Debian release.
	Mirror string
	// Progress receives one line per step of the build (debootstrap's own
	// lines included); nil discards them.
	Progress func(line string)
	// Ref is the image reference to tag the build with; default
	// Recipe.Tag, the one aidb runs when it cannot pull. Another reference
	// tries a build without replacing that one.
	Ref string
}

// ErrMajorNotShipped reports a major version the Debian release has no
// postgresql-<major> package for.
var ErrMajorNotShipped = errors.New("postgresql major version not shipped by this Debian release")

// Build bootstraps, imports and tags opts.Ref (default opts.Recipe.Tag),
// and returns that reference. The recipe must be a base one (no Base: see
// AddLayer). It runs as long as debootstrap needs (about
// two minutes here) and stops when ctx is cancelled: debootstrap's whole
// process tree is killed, what it mounted in the temporary root filesystem
// is unmounted, and the folder is removed (also on any failure). Nothing is
// tagged unless the import completed.
func Build(ctx context.Context, imp Importer, opts Options) (ref string, retErr error) {
	r := opts.Recipe
	if !regexp.MustCompile(`^[0-9]{1,3}$`).MatchString(r.Major) || r.Suite == "" || len(r.Packages) == 0 || r.Base != nil {
		return "", fmt.Errorf("build postgres image: %q is no base recipe (RecipeFor gives them)", r.For)
	}
	if err := supported(); err != nil {
		return "", err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	ref = opts.Ref
	if ref == "" {
		ref = r.Tag
	}
	// The whole output of apt-get and debootstrap (about 600 lines) goes to
	// a log file; people see one line per stage, and the tail on failure.
	logPath := LogPath(ref)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("build postgres image: create its log: %w", err)
	}
	defer func() { _ = logFile.Close() }()
	defer func() {
		if retErr != nil && ctx.Err() == nil {
			retErr = fmt.Errorf("%w\n(the whole build log is in %s)", retErr, logPath)
		}
	}()
	if err := ensureHost(ctx, systemTools(), logFile, progress); err != nil {
		return "", err
	}
	suite, mirror, err := resolveSource(r.Suite, opts.Mirror)
	if err != nil {
		return "", err
	}

	root, err := os.MkdirTemp("", "aidb-pgimage-")
	if err != nil {
		return "", fmt.Errorf("build postgres image: %w", err)
	}
	defer func() {
		err := unmountUnder(root)
		if err == nil {
			err = os.RemoveAll(root)
		}
		if err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("remove build folder %s: %w", root, err))
		}
	}()

	pkg := strings.Join(r.Packages, ",")
	start := time.Now()
	progress(fmt.Sprintf("debootstrap %s with %s from %s into %s (log: %s)", suite, pkg, mirror, root, logPath))
	if err := debootstrap(ctx, root, suite, mirror, pkg, logFile, func(stage string) {
		progress(fmt.Sprintf("building %s: %s (%s)", ref, stage, time.Since(start).Round(time.Second)))
	}); err != nil {
		return "", err
	}
	progress(fmt.Sprintf("building %s: preparing the image filesystem (%s)", ref, time.Since(start).Round(time.Second)))
	if err := prepareRoot(root, r.Major); err != nil {
		return "", err
	}
	progress(fmt.Sprintf("building %s: importing it into the engine (%s)", ref, time.Since(start).Round(time.Second)))
	if err := importRoot(ctx, imp, root, ref, r); err != nil {
		return "", err
	}
	return ref, nil
}

// LogPath is where the build of ref keeps its whole log (apt-get's and
// debootstrap's output): one file per reference in the temporary folder,
// replaced by the next build of the same reference.
func LogPath(ref string) string {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(ref)
	return filepath.Join(os.TempDir(), "aidb-image-build-"+name+".log")
}

// stageOf names the build stage a debootstrap line starts ("I: Retrieving
// libc6 2.36", "I: Unpacking …"), or "" for a line within a stage.
func stageOf(line string) string {
	rest, ok := strings.CutPrefix(line, "I: ")
	if !ok {
		return ""
	}
	verb, _, _ := strings.Cut(rest, " ")
	switch verb {
	case "Retrieving", "Validating", "Checking", "Resolving", "Found":
		return "downloading packages"
	case "Extracting":
		return "extracting packages"
	case "Installing":
		return "installing the core packages"
	case "Unpacking":
		return "unpacking packages"
	case "Configuring":
		return "configuring packages"
	case "Base":
		return "base system installed"
	}
	return ""
}

// debootstrap runs debootstrap into root, its whole output into log, and
// calls stage each time it enters another stage.
func debootstrap(ctx context.Context, root, suite, mirror, pkg string, log io.Writer, stage func(string)) error {
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+pkg, suite, root, mirror)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	// debootstrap is a shell script running wget, dpkg and chroot: killing
	// it alone would leave them writing into root. In a process group of its
	// own, Ctrl-C ends the whole tree.
	ownGroup(cmd, root)
	// Bounds Wait should a process outside the group hold the output open.
	cmd.WaitDelay = 15 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start debootstrap: %w", err)
	}
	// Keep the tail for the error message; debootstrap prints "E: ..." last.
	var tail []string
	current := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		_, _ = fmt.Fprintln(log, line)
		if st := stageOf(line); st != "" && st != current {
			current = st
			stage(st)
		}
		tail = append(tail, line)
		if len(tail) > 15 {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		text := strings.Join(tail, "\n")
		if strings.Contains(text, "Couldn't find these debs") {
			return fmt.Errorf("%w: Debian %s lacks a package of %s (%s)", ErrMajorNotShipped, suite, pkg, text[strings.LastIndex(text, "Couldn't find these debs"):])
		}
		return fmt.Errorf("debootstrap %s with %s: %w\n%s", suite, pkg, err, text)
	}
	return nil
}

// prepareRoot adds the entrypoint and removes what a server image does not
// need: apt's caches and lists, documentation, and the "main" cluster that
// Debian's postinst creates (the entrypoint makes its own in PGDATA).
func prepareRoot(root, major string) error {
	ep := filepath.Join(root, "usr/local/bin/docker-entrypoint.sh")
	if err := os.MkdirAll(filepath.Dir(ep), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(ep, entrypoint, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "docker-entrypoint-initdb.d"), 0o755); err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{
		"var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
		"usr/share/info", "var/lib/postgresql/" + major, "etc/postgresql/" + major,
	} {
		errs = append(errs, os.RemoveAll(filepath.Join(root, p)))
	}
	errs = append(errs, os.MkdirAll(filepath.Join(root, "var/lib/apt/lists/partial"), 0o755))
	return errors.Join(errs...)
}

func importRoot(ctx context.Context, imp Importer, root, ref string, r Recipe) error {
	bin := "/usr/lib/postgresql/" + r.Major + "/bin"
	changes := []string{
		"ENV PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV PGDATA=/var/lib/postgresql/data",
		"ENV LANG=C.UTF-8",
		"ENTRYPOINT [\"/usr/local/bin/docker-entrypoint.sh\"]",
		"CMD [\"postgres\"]",
		"EXPOSE 5432",
		// No STOPSIGNAL: docker import does not take it; the orchestrator
		// stops database containers with SIGINT (fast shutdown), as the
		// official image's STOPSIGNAL does.
		"LABEL aidb.image=" + r.Name + " aidb.postgres.major=" + r.Major + " aidb.debian=" + r.Suite,
	}
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", root, "-cf", "-", ".")
	var stderr strings.Builder
	tar.Stderr = &stderr
	out, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tar.Start(); err != nil {
		return fmt.Errorf("start tar: %w", err)
	}
	importErr := imp.Import(ctx, out, ref, changes)
	// Drain so tar can finish even when the import stopped early.
	_, _ = io.Copy(io.Discard, out)
	tarErr := tar.Wait()
	if importErr != nil {
		return fmt.Errorf("import %s: %w", ref, importErr)
	}
	if tarErr != nil {
		return fmt.Errorf("tar %s: %w: %s", root, tarErr, stderr.String())
	}
	return nil
}

// resolveSource finds the archive to bootstrap suite from: mirror if
// given, else AIDB_DEBIAN_MIRROR, else the host's apt source for suite, else
// the host's apt source for its own Debian release (a Debian archive holds
// every release: a Debian 12 host builds Debian 13 images from it).
func resolveSource(suite, mirror string) (string, string, error) {
	if mirror == "" {
		mirror = os.Getenv("AIDB_DEBIAN_MIRROR")
	}
	if mirror == "" {
		mirror = aptMirror(suite)
	}
	if mirror == "" {
		if osRelease, err := os.ReadFile("/etc/os-release"); err == nil && osReleaseValue(string(osRelease), "ID") == "debian" {
			if own := osReleaseValue(string(osRelease), "VERSION_CODENAME"); own != "" {
				mirror = aptMirror(own)
			}
		}
	}
	if mirror == "" {
		return "", "", fmt.Errorf("build postgres image: no apt source for Debian %s (or this host's Debian release) found in /etc/apt; set AIDB_DEBIAN_MIRROR to a Debian archive URL", suite)
	}
	return suite, mirror, nil
}

func osReleaseValue(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// aptMirror returns the first archive the host's apt sources (one-line and
// deb822 formats) name for suite.
func aptMirror(suite string) string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if m := deb822Mirror(string(b), suite); m != "" {
				return m
			}
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		if b, err := os.ReadFile(f); err == nil {
			if m := oneLineMirror(string(b), suite); m != "" {
				return m
			}
		}
	}
	return ""
}

func deb822Mirror(text, suite string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
				fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(" "+fields["Types"]+" ", " deb ") || fields["Enabled"] == "no" {
			continue
		}
		for _, s := range strings.Fields(fields["Suites"]) {
			if s == suite {
				if uris := strings.Fields(fields["URIs"]); len(uris) > 0 {
					return uris[0]
				}
			}
		}
	}
	return ""
}

func oneLineMirror(text, suite string) string {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "deb" {
			f = f[1:]
			if len(f) > 0 && strings.HasPrefix(f[0], "[") { // options: [arch=amd64 signed-by=…]
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 && f[1] == suite {
				return f[0]
			}
		}
	}
	return ""
}
