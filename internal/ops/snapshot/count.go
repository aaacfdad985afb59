package snapshot

import (
	"context"
	"fmt"
	"strings"

	"github.com/aidb/aidb/internal/fault"
)

// Counts are a database's snapshots and clones, as status and nuke say
// them.
type Counts struct {
	Database  string `json:"database"`
	Snapshots int    `json:"snapshots"`
	Clones    int    `json:"clones"`
	// Newest is the newest snapshot taken by hand ("" for none): what
	// reset goes back to.
	Newest string `json:"newest,omitempty"`
}

// Count counts t's snapshots and clones (one query on its server's
// maintenance database).
func Count(ctx context.Context, t Target) (Counts, error) {
	cs, err := List(ctx, t, "")
	if err != nil {
		return Counts{}, err
	}
	c := Counts{Database: t.Name}
	for _, x := range cs {
		switch {
		case x.Kind == KindClone:
			c.Clones++
		case x.Auto == "":
			c.Snapshots++
			c.Newest = x.Name
		default:
			c.Snapshots++
		}
	}
	return c, nil
}

// UpgradeError refuses a major upgrade of a database that has snapshots
// or clones: the upgrade moves the database by a backup (which never holds
// them) onto a new volume, so they would stay behind on the old major's
// volume and vanish with its --finish.
type UpgradeError struct {
	Database string
	// Copies name each, as "snapshot NAME" or "clone NAME".
	Copies []string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("%s has %d snapshots and clones (%s), which a major upgrade does not carry to the new major (it moves the data by a backup, which never holds them): remove them first with aidb snapshot rm NAME and aidb clone rm NAME; nothing was changed",
		e.Database, len(e.Copies), strings.Join(e.Copies, ", "))
}

// Kind makes the refusal bad input (exit 2).
func (e *UpgradeError) Kind() fault.Kind { return fault.Invalid }

// RefuseUpgrade returns an *UpgradeError when t has snapshots or clones;
// nil when it has none or cannot be asked (a database that is not up:
// the upgrade says so itself).
func RefuseUpgrade(ctx context.Context, t Target) error {
	cs, err := List(ctx, t, "")
	if err != nil || len(cs) == 0 {
		return nil
	}
	e := &UpgradeError{Database: t.Name}
	for _, c := range cs {
		e.Copies = append(e.Copies, string(c.Kind)+" "+c.Name)
	}
	return e
}
