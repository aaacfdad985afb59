package adopt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aidb/aidb/internal/fault"
)

// Written names the files Write wrote.
type Written struct {
	Config   string // aidb.yaml
	Makefile string // Makefile.ai
}

// Write writes the plan's aidb.yaml and Makefile.ai into p.Dir. Without
// force an existing one of either is refused (fault.Invalid), and nothing
// is written. The aidb.yaml is written first to a temporary file beside
// it and given to load, which loads it as aidb will (with the compose
// file): one that does not load is refused, and nothing is written. Then
// the Makefile.ai is written whole, and the aidb.yaml renamed into place;
// if that rename fails the Makefile.ai is removed again.
func (p Plan) Write(force bool, load func(configFile string) error) (Written, error) {
	w := Written{Config: filepath.Join(p.Dir, "aidb.yaml"), Makefile: filepath.Join(p.Dir, "Makefile.ai")}
	if !force {
		for _, f := range []string{w.Config, w.Makefile} {
			if _, err := os.Lstat(f); err == nil {
				return w, fault.BadInput(fmt.Errorf("%s exists: aidb init does not overwrite it; pass --force to replace it (and the other file it writes); nothing was written", f))
			}
		}
	}
	// What is written is what aidb will load: load it first.
	tmp, err := os.CreateTemp(p.Dir, ".aidb.yaml.init-*")
	if err != nil {
		return w, fmt.Errorf("write into %s: %w", p.Dir, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := writeTemp(tmp, p.Config()); err != nil {
		return w, err
	}
	if err := load(tmp.Name()); err != nil {
		return w, fault.BadInput(fmt.Errorf("the aidb.yaml init would write does not load: %w; fix the compose file (or write aidb.yaml by hand); nothing was written", err))
	}
	if err := writeFile(w.Makefile, p.Makefile()); err != nil {
		return w, err
	}
	if err := os.Rename(tmp.Name(), w.Config); err != nil {
		return w, errors.Join(fmt.Errorf("write %s: %w", w.Config, err), os.Remove(w.Makefile))
	}
	return w, nil
}

// writeTemp writes b into tmp, makes it readable by all and closes it.
func writeTemp(tmp *os.File, b []byte) error {
	_, err := tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFile writes b to path whole or not at all (a temporary file beside
// it, renamed), readable by all: a Makefile is no secret.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".init-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := writeTemp(tmp, b); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
