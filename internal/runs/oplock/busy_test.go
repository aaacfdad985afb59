package oplock

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

func TestBusyErrorSaysWhatIsBusyAndWho(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *BusyError
		want string
	}{
		{&BusyError{Database: "rulesdb", Holder: "aidb backup (pid 12), since 10:04:05", Timeout: 5 * time.Minute},
			"rulesdb is busy: aidb backup (pid 12), since 10:04:05 has held its operation lock for longer than 5m0s"},
		{&BusyError{Folder: "backups", Holder: "aidb restore (pid 7, since 10:00:00)", Timeout: time.Second},
			"the backup folder backups is busy: aidb restore (pid 7, since 10:00:00) has held its lock for longer than 1s"},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
		assert.Equal(t, fault.Busy, fault.KindOf(tc.err))
		assert.NotContains(t, tc.err.Error(), "--", "flags are cmd's to name")
	}
}

// A second Folder lock on a held folder waits its timeout, then returns a
// BusyError naming the holder the lock file records.
func TestFolderBusyAfterTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	held, err := Folder(t.Context(), dir, "aidb backup", time.Second, nil)
	require.NoError(t, err)
	defer func() { _ = held.Release() }()

	var told string
	_, err = Folder(t.Context(), dir, "aidb prune", 50*time.Millisecond, func(holder string) { told = holder })
	var busy *BusyError
	require.True(t, errors.As(err, &busy), "%v", err)
	assert.Equal(t, dir, busy.Folder)
	assert.Contains(t, busy.Holder, "aidb backup (pid ")
	assert.Equal(t, busy.Holder, told, "the waiter was told who holds it")
}
