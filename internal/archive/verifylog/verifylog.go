// Package verifylog is the record of verifications: each time aidb proves
// a backup restorable (or finds it is not), one line goes into a log
// beside the backup, so that `aidb check` can say whether the newest backup
// was verified and `aidb list` when each one last was.
//
// A record names the file and the sha256 of its bytes: a verification is a
// fact about those bytes, so a file replaced under the same name is not
// verified by its predecessor's record. The log lives in the backup's own
// folder, one JSON object a line, appended with O_APPEND in one write (a
// line is far below the size the kernel writes whole), so parallel
// verifications of one run and of several processes never interleave.
// A line that cannot be read (cut by a crash) is skipped.
package verifylog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
)

// Name is the log's file name in the backup folder.
const Name = ".aidb.verified.jsonl"

// Outcome is what a verification found.
type Outcome string

const (
	// Equal means restored and equal to the manifest.
	Equal Outcome = "equal"
	// Differs means restored, and something differs from the manifest.
	Differs Outcome = "differs"
	// Failed means the file could not be verified (it did not restore, or the
	// throwaway server did not start).
	Failed Outcome = "failed"
)

// Record is one verification of one backup file.
type Record struct {
	// File is the backup file's name in its folder.
	File     string          `json:"file"`
	SHA256   string          `json:"sha256"`
	Database string          `json:"database"`
	Kind     backupfile.Kind `json:"kind"`
	// At is when the verification ended (UTC).
	At time.Time `json:"at"`
	// Image is the image of the throwaway server it was restored into.
	Image   string  `json:"image,omitempty"`
	Outcome Outcome `json:"outcome"`
	// Detail says what differed or why it failed, shortened.
	Detail string `json:"detail,omitempty"`
}

// maxDetail bounds a record's detail, so a line stays one small write.
const maxDetail = 512

// Append adds r to the log in dir (the backup file's folder), creating it
// (mode 0600) if needed, and flushes it to disk.
func Append(dir string, r Record) error {
	if len(r.Detail) > maxDetail {
		r.Detail = r.Detail[:maxDetail] + "…"
	}
	r.At = r.At.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, Name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record the verification of %s: %w", r.File, err)
	}
	_, err = f.Write(append(b, '\n'))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the verification of %s in %s: %w", r.File, path, err)
	}
	return nil
}

// Log is the records of one folder, in the order they were written.
type Log []Record

// Read reads the log in dir; a folder without one has an empty log.
func Read(dir string) (Log, error) {
	f, err := os.Open(filepath.Join(dir, Name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the verification log: %w", err)
	}
	defer func() { _ = f.Close() }()
	return Parse(f)
}

// Parse reads a log's lines; lines that are not a record are skipped.
func Parse(r io.Reader) (Log, error) {
	var out Log
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var rec Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.File == "" || rec.SHA256 == "" || rec.At.IsZero() {
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read the verification log: %w", err)
	}
	return out, nil
}

// Last is the newest record of the file name with those bytes (sha256).
func (l Log) Last(name, sha256 string) (Record, bool) {
	return l.newest(name, sha256, func(Record) bool { return true })
}

// LastVerdict is the newest record of the file name with those bytes that
// says whether they restore to their manifest (Equal or Differs): a
// verification that could not run (Failed: no container, the engine gone)
// says nothing of the bytes, and does not outweigh an earlier verdict.
func (l Log) LastVerdict(name, sha256 string) (Record, bool) {
	return l.newest(name, sha256, func(r Record) bool { return r.Outcome != Failed })
}

// newest is the newest record of name and sha256 that keep accepts.
func (l Log) newest(name, sha256 string, keep func(Record) bool) (Record, bool) {
	var best Record
	found := false
	for _, r := range l {
		if r.File == name && r.SHA256 == sha256 && keep(r) && (!found || !r.At.Before(best.At)) {
			best, found = r, true
		}
	}
	return best, found
}
