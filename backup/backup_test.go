package backup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnquote(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "public.goose_db_version", unquote("public.goose_db_version"))
	assert.Equal(t, `My Schema.a"b`, unquote(`"My Schema"."a""b"`))
	assert.Equal(t, "a.b.c", unquote(`"a.b".c`))
}
