package fingerprint

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Each property that differs is named, in both directions; what the
// backup left out (owner and ACL of a backup without owners) is not.
func TestDatabaseDifferences(t *testing.T) {
	t.Parallel()
	want := Database{Owner: "app", ConnLimit: -1, Comment: "c", ACL: []string{"app CONNECT"},
		Settings: []string{"search_path=app, public"}, RoleSettings: []RoleSettings{{Role: "r", Settings: []string{"work_mem=8MB"}}}}
	assert.Empty(t, want.Differences(want))
	got := Database{Owner: "postgres", ConnLimit: 5, ACL: []string{"PUBLIC CONNECT", "app CONNECT"},
		RoleSettings: []RoleSettings{{Role: "s", Settings: []string{"work_mem=1MB"}}}}
	assert.Equal(t, []string{
		"database: owner postgres, the backup has app",
		"database: connection limit 5, the backup has -1",
		`database: comment "", the backup has "c"`,
		"database: privilege PUBLIC CONNECT: the restored database has it, the backup does not",
		"database: setting search_path=app, public: the backup has it, the restored database does not",
		"database: role r's setting work_mem=8MB: the backup has it, the restored database does not",
		"database: role s's setting work_mem=1MB: the restored database has it, the backup does not",
	}, want.Differences(got))
	noOwners := Database{ConnLimit: 5, RoleSettings: got.RoleSettings}
	assert.Empty(t, noOwners.Differences(got), "owner and ACL are not compared when the backup left them out")
	assert.Equal(t, "App Owner", UnquoteRole(`"App Owner"`))
	assert.Equal(t, `a"b`, UnquoteRole(`"a""b"`))
	assert.Equal(t, "app", UnquoteRole("app"))
}
