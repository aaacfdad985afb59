package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/docker/go-units"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/folder"
)

// Pushed is what a push did.
type Pushed struct {
	// Uploaded are the URLs of the backups uploaded, Present those the
	// repository held already (same name, same sha256).
	Uploaded []string `json:"uploaded"`
	Present  []string `json:"present"`
	// Skipped are local files not uploaded, with why: without a manifest,
	// or damaged.
	Skipped []Skip `json:"skipped"`
	// Sets are the set manifests uploaded.
	Sets []string `json:"sets"`
}

// Skip is a local file push left out, and why.
type Skip struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// ConflictError says the repository holds another backup under a local
// backup's name (another sha256): push never replaces it.
type ConflictError struct{ Local, Remote, msg string }

func (e *ConflictError) Error() string { return e.msg }

// Push uploads the backups of the folder local that the repository lacks,
// by name and sha256: each data object streamed and checked against its
// manifest as it passes, then its manifest; a backup the repository holds
// with the same sha256 is not uploaded again, so a second push uploads
// nothing. Files without a manifest, or whose manifest cannot be read, are
// skipped; a file whose bytes turn out not to match its manifest is not
// uploaded (its upload aborted). A set manifest is uploaded once every file
// it names is in the repository. progress, if not nil, hears each step.
// Failures of single files are joined; the others are still pushed.
func (r *Repository) Push(ctx context.Context, local catalog.Store, progress func(string)) (Pushed, error) {
	say := func(format string, v ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, v...))
		}
	}
	res := Pushed{Uploaded: []string{}, Present: []string{}, Skipped: []Skip{}, Sets: []string{}}
	mine, err := catalog.New(local).Describe(ctx)
	if err != nil {
		return res, err
	}
	theirs, err := catalog.New(r).Describe(ctx)
	if err != nil {
		return res, err
	}
	remote := map[string]catalog.Described{}
	for _, d := range theirs {
		remote[d.Name] = d
	}
	has := map[string]bool{}
	var errs []error
	for _, d := range mine {
		if ctx.Err() != nil {
			break
		}
		if d.Err != nil {
			reason := d.Err.Error()
			if errors.Is(d.Err, manifest.ErrMissing) {
				reason = "no manifest: only backups aidb made (with their manifests) are pushed"
			}
			res.Skipped = append(res.Skipped, Skip{d.Path, reason})
			continue
		}
		url := r.Path(d.Name)
		if rd, ok := remote[d.Name]; ok && rd.Err == nil {
			if rd.Manifest.SHA256 != d.Manifest.SHA256 {
				errs = append(errs, &ConflictError{d.Path, url, fmt.Sprintf("push %s: the repository holds another backup under that name (%s, sha256 %s; this one's is %s): it is left as it is", d.Path, url, rd.Manifest.SHA256, d.Manifest.SHA256)})
				continue
			}
			size, sum, err := r.Sum(ctx, d.Name)
			if err == nil && size == d.Manifest.Size && sum == d.Manifest.SHA256 {
				res.Present = append(res.Present, url)
				has[d.Name] = true
				continue
			}
			// Its manifest is there but its data object is not whole: upload
			// it again below.
		}
		say("upload %s (%s)", url, units.BytesSize(float64(d.Manifest.Size)))
		if err := r.pushOne(ctx, local, d); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Uploaded = append(res.Uploaded, url)
		has[d.Name] = true
	}
	if ctx.Err() == nil {
		errs = append(errs, r.pushSets(ctx, local, has, &res, say))
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// pushOne uploads one backup file, then its manifest.
func (r *Repository) pushOne(ctx context.Context, local catalog.Store, d catalog.Described) error {
	f, err := local.Open(ctx, d.Name)
	if err != nil {
		return fmt.Errorf("push %s: %w", d.Path, err)
	}
	defer func() { _ = f.Close() }()
	if err := r.Put(ctx, d.Name, f, d.Manifest.Size, d.Manifest.SHA256); err != nil {
		return err
	}
	return r.PutSmall(ctx, d.Name+manifest.Suffix, d.ManifestBytes)
}

// pushSets uploads the set manifests the repository lacks whose files it
// all holds now.
func (r *Repository) pushSets(ctx context.Context, local catalog.Store, has map[string]bool, res *Pushed, say func(string, ...any)) error {
	sets, raw, err := catalog.New(local).Sets(ctx)
	if err != nil {
		return err
	}
	entries, err := r.List(ctx)
	if err != nil {
		return err
	}
	there := map[string]bool{}
	for _, e := range entries {
		there[e.Name] = true
	}
	var errs []error
	for name, s := range sets {
		if there[name] {
			continue
		}
		whole := true
		for _, f := range s.Files {
			whole = whole && has[f.File]
		}
		if !whole {
			continue
		}
		say("upload %s", r.Path(name))
		if err := r.PutSmall(ctx, name, raw[name]); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Sets = append(res.Sets, r.Path(name))
	}
	return errors.Join(errs...)
}

// Pulled is what a pull did.
type Pulled struct {
	// File is the backup's path in the folder.
	File string `json:"file"`
	// Downloaded is false when the folder held the same backup already.
	Downloaded bool  `json:"downloaded"`
	Size       int64 `json:"size"`
}

// Pull downloads the backup name of the repository with its manifest into
// the folder dir: the file is written as a partial file, hashed as it
// arrives, and gets its final name only when its size and sha256 match the
// manifest; then the manifest is written beside it. A file of that name
// already in the folder with the same sha256 is kept (nothing downloaded);
// one with other bytes is refused (bad input): pull never replaces a file.
func (r *Repository) Pull(ctx context.Context, name, dir string) (Pulled, error) {
	url := r.Path(name)
	mb, err := r.readAll(ctx, name+manifest.Suffix)
	if errors.Is(err, os.ErrNotExist) {
		if _, _, serr := r.Sum(ctx, name); serr == nil {
			return Pulled{}, fault.BadInput(fmt.Errorf("pull %s: it has no manifest in the repository (an upload cut short): it is not a whole backup; push it again from where it was taken", url))
		}
		return Pulled{}, fault.BadInput(fmt.Errorf("pull %s: no such backup in %s", url, r.url))
	}
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", url, err)
	}
	m, err := manifest.Parse(mb, url)
	if err != nil {
		return Pulled{}, fault.BadInput(fmt.Errorf("pull %s: %w", url, err))
	}
	path := filepath.Join(dir, name)
	out := Pulled{File: path, Size: m.Size}
	if err := manifest.CheckSchema(url, m); err != nil {
		return out, fmt.Errorf("pull %s: %w: the backup in the repository is damaged; nothing was written", url, err)
	}
	if _, err := os.Lstat(path); err == nil {
		if err := manifest.Check(path, m); err != nil {
			// %v, not %w: the local file's *manifest.MismatchError is detail
			// here; the refusal is the pull's, not a damaged backup's.
			return out, fault.BadInput(fmt.Errorf("pull %s: %s is in the folder already with other bytes (%v): move it away first; nothing was changed", url, path, err)) //nolint:errorlint // told, not wrapped (above)
		}
		if _, err := os.Stat(manifest.PathFor(path)); err != nil {
			if err := folder.WriteFileAtomic(manifest.PathFor(path), mb); err != nil {
				return out, fmt.Errorf("pull %s: %w", url, err)
			}
		}
		return out, nil
	}
	if err := folder.Ensure(dir); err != nil {
		return out, err
	}
	body, err := r.Open(ctx, name)
	if err != nil {
		return out, fmt.Errorf("pull %s: %w", url, err)
	}
	defer func() { _ = body.Close() }()
	f, err := folder.Create(dir, name)
	if err != nil {
		return out, fmt.Errorf("pull %s: %w", url, err)
	}
	defer func() { _ = f.Abort() }()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if err != nil {
		return out, fmt.Errorf("pull %s: download: %w", url, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != m.Size || sum != m.SHA256 {
		return out, fmt.Errorf("pull %s: downloaded %d bytes with sha256 %s, but its manifest says %d bytes with sha256 %s: the object in the repository is damaged; nothing was written", url, n, sum, m.Size, m.SHA256)
	}
	if err := f.Commit(); err != nil {
		return out, fmt.Errorf("pull %s: %w", url, err)
	}
	if err := folder.WriteFileAtomic(manifest.PathFor(path), mb); err != nil {
		return out, fmt.Errorf("pull %s: %w", url, err)
	}
	out.Downloaded = true
	return out, nil
}

func (r *Repository) readAll(ctx context.Context, name string) ([]byte, error) {
	b, err := r.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.Close() }()
	return io.ReadAll(b)
}
