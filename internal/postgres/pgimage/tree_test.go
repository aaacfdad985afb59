package pgimage

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMountPoints(t *testing.T) {
	t.Parallel()
	info := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:5 / /tmp/aidb-pgimage-1/proc rw - proc proc rw
36 22 0:6 / /tmp/aidb-pgimage-1/dev/with\040space rw - tmpfs nodev rw
`
	assert.Equal(t, []string{"/", "/tmp/aidb-pgimage-1/proc", "/tmp/aidb-pgimage-1/dev/with space"}, mountPoints(info))
}

func TestStatFields(t *testing.T) {
	t.Parallel()
	state, pgrp, ok := statFields("4242 (a (weird) name) S 1 4240 4240 0 -1 4194560")
	assert.True(t, ok)
	assert.Equal(t, "S", state)
	assert.Equal(t, 4240, pgrp)
	_, _, ok = statFields("garbage")
	assert.False(t, ok)
}
