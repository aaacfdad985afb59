package pitr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RecordName is the file aidb writes into a base backup's folder once
// pg_basebackup has finished: a folder without it is no whole base backup
// (a run killed half-way) and never counts.
const RecordName = "aidb-base.json"

// Base is one whole base backup: <backupdir>/base/<db>/<timestamp>/ with
// pg_basebackup's tar format (base.tar.gz, pg_wal.tar.gz: the WAL from
// its start to its end, so it is consistent on its own), its
// backup_manifest and aidb's record.
type Base struct {
	// Name is the folder's name (its timestamp).
	Name string `json:"name"`
	// Start and End are the server's clock before pg_basebackup started
	// and after it finished: the database can be recovered to End or
	// later from it.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Timeline, StartLSN and EndLSN are the WAL range it carries (from
	// backup_manifest's WAL-Ranges).
	Timeline uint32 `json:"timeline"`
	StartLSN LSN    `json:"start_lsn"`
	EndLSN   LSN    `json:"end_lsn"`
	// SegmentSize is the server's wal_segment_size.
	SegmentSize uint64 `json:"wal_segment_size"`
	// Image is the image the database ran (its major restores it).
	Image         string `json:"image"`
	ServerVersion string `json:"server_version"`
	// Parent is the base backup this one is incremental to (pg_basebackup
	// --incremental, PostgreSQL 17): restoring it combines the chain from
	// the full one (pg_combinebackup). "": a full one.
	Parent string `json:"parent,omitempty"`
}

// Chain is b's chain of base backups, the full one first and b last (b
// alone for a full one); nil when a parent is missing from bases.
func Chain(bases []Base, b Base) []Base {
	byName := map[string]Base{}
	for _, x := range bases {
		byName[x.Name] = x
	}
	out := []Base{b}
	for cur := b; cur.Parent != ""; {
		p, ok := byName[cur.Parent]
		if !ok || len(out) > len(bases) {
			return nil
		}
		out = append([]Base{p}, out...)
		cur = p
	}
	return out
}

// EndSegNo is the number of the segment that holds the backup's end.
func (b Base) EndSegNo() uint64 {
	size := b.SegmentSize
	if size == 0 {
		size = DefaultSegmentSize
	}
	return uint64(b.EndLSN) / size
}

// LSN is a WAL position; its JSON and text form is PostgreSQL's (0/3000028).
type LSN uint64

// ParseLSN reads PostgreSQL's X/Y form.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is no WAL position (like 0/3000028)", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }

// MarshalText writes X/Y.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads X/Y.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	*l = v
	return err
}

// WALRange reads the timeline and WAL range a base backup carries from
// its backup_manifest (PostgreSQL 13 and later write one).
func WALRange(manifest []byte) (tli uint32, start, end LSN, err error) {
	var m struct {
		Ranges []struct {
			Timeline uint32 `json:"Timeline"`
			Start    string `json:"Start-LSN"`
			End      string `json:"End-LSN"`
		} `json:"WAL-Ranges"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return 0, 0, 0, fmt.Errorf("read backup_manifest: %w", err)
	}
	if len(m.Ranges) == 0 {
		return 0, 0, 0, errors.New("read backup_manifest: it names no WAL range")
	}
	last := m.Ranges[len(m.Ranges)-1]
	if start, err = ParseLSN(m.Ranges[0].Start); err == nil {
		end, err = ParseLSN(last.End)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read backup_manifest: %w", err)
	}
	return last.Timeline, start, end, nil
}

// Bases lists the whole base backups under dir (a database's base
// folder), oldest first. Folders without a readable record are left out.
func Bases(dir fs.FS) ([]Base, error) {
	entries, err := fs.ReadDir(dir, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list base backups: %w", err)
	}
	var out []Base
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := fs.ReadFile(dir, path.Join(e.Name(), RecordName))
		if err != nil {
			continue
		}
		var b Base
		if json.Unmarshal(raw, &b) != nil || b.End.IsZero() {
			continue
		}
		b.Name = e.Name()
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Base) int { return a.End.Compare(b.End) })
	return wholeChains(out), nil
}

// wholeChains leaves out the incremental base backups whose chain misses
// a base backup (removed by hand, never fetched): they cannot be restored.
func wholeChains(bases []Base) []Base {
	return slices.DeleteFunc(slices.Clone(bases), func(b Base) bool { return Chain(bases, b) == nil })
}
