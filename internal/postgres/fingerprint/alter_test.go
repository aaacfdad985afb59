package fingerprint

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A list setting's names come back one literal each, as pg_dump writes
// them: quoted names unquoted, blanks around commas dropped.
func TestSetClauseSplitsListSettings(t *testing.T) {
	t.Parallel()
	assert.Equal(t, `search_path TO '$user', 'public', 'My ''x'' "s"'`, setClause(`search_path="$user", public, "My 'x' ""s"""`))
	assert.Equal(t, `search_path TO ''`, setClause(`search_path=""`))
	assert.Equal(t, `work_mem TO '64MB'`, setClause("work_mem=64MB"))
	assert.Equal(t, `app.note TO 'a=b, c'`, setClause("app.note=a=b, c"), "a plain setting is one literal, '=' and ',' kept")
}

// Each alteration names the database it is for, quoted.
func TestAlterationsFor(t *testing.T) {
	t.Parallel()
	d := Database{Owner: "o", ConnLimit: -1, Settings: []string{"work_mem=64MB"}, ACL: []string{"PUBLIC CONNECT"}}
	var got []string
	for _, a := range d.Alterations() {
		got = append(got, a.For("My DB"))
	}
	assert.Equal(t, []string{
		`ALTER DATABASE "My DB" OWNER TO "o"`,
		`ALTER DATABASE "My DB" CONNECTION LIMIT -1`,
		`ALTER DATABASE "My DB" RESET ALL`,
		`ALTER DATABASE "My DB" SET work_mem TO '64MB'`,
		`COMMENT ON DATABASE "My DB" IS NULL`,
		`REVOKE ALL ON DATABASE "My DB" FROM PUBLIC`,
		`REVOKE ALL ON DATABASE "My DB" FROM "o"`,
		`GRANT CONNECT ON DATABASE "My DB" TO PUBLIC`,
	}, got)
}
