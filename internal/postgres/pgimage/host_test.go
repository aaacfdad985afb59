package pgimage

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeHost is a machine for ensureHost: which commands exist, what
// /etc/os-release says, and what running apt-get does.
type fakeHost struct {
	have    map[string]bool
	release string
	// fails is how many apt-get install runs fail before one succeeds.
	fails int
	ran   []string
}

func (f *fakeHost) tools(euid int) hostTools {
	return hostTools{
		goos: "linux",
		euid: euid,
		lookPath: func(name string) (string, error) {
			if f.have[name] {
				return "/usr/bin/" + name, nil
			}
			return "", errors.New("not found")
		},
		osRelease: func() (string, error) { return f.release, nil },
		run: func(_ context.Context, _ io.Writer, name string, args ...string) error {
			f.ran = append(f.ran, name+" "+strings.Join(args, " "))
			if args[0] == "install" {
				if f.fails > 0 {
					f.fails--
					return errors.New("exit status 100")
				}
				f.have["debootstrap"] = true
			}
			return nil
		},
	}
}

func TestEnsureHost(t *testing.T) {
	t.Parallel()
	const debian = "ID=debian\nVERSION_CODENAME=bookworm\n"
	const ubuntu = "ID=ubuntu\nID_LIKE=debian\n"
	const fedora = "ID=fedora\n"
	for _, tc := range []struct {
		name    string
		euid    int
		have    []string
		release string
		fails   int
		wantErr string
		wantRan []string
	}{
		{name: "present", have: []string{"debootstrap", "apt-get"}, release: debian},
		{name: "not root", euid: 1000, release: debian, wantErr: ErrNeedsRoot.Error()},
		{name: "debian installs", have: []string{"apt-get"}, release: debian,
			wantRan: []string{"apt-get install -y -q debootstrap"}},
		{name: "ubuntu installs", have: []string{"apt-get"}, release: ubuntu,
			wantRan: []string{"apt-get install -y -q debootstrap"}},
		{name: "stale lists: update, then install", have: []string{"apt-get"}, release: debian, fails: 1,
			wantRan: []string{"apt-get install -y -q debootstrap", "apt-get update -q", "apt-get install -y -q debootstrap"}},
		{name: "install fails twice", have: []string{"apt-get"}, release: debian, fails: 2,
			wantErr: "install debootstrap with apt-get",
			wantRan: []string{"apt-get install -y -q debootstrap", "apt-get update -q", "apt-get install -y -q debootstrap"}},
		{name: "other system says what to install", release: fedora, wantErr: "install debootstrap with the system's package manager"},
		{name: "debian without apt-get", release: debian, wantErr: "install debootstrap with the system's package manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeHost{have: map[string]bool{}, release: tc.release, fails: tc.fails}
			for _, h := range tc.have {
				f.have[h] = true
			}
			var said []string
			err := ensureHost(t.Context(), f.tools(tc.euid), io.Discard, func(l string) { said = append(said, l) })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantRan, f.ran)
			if len(tc.wantRan) > 0 {
				require.NotEmpty(t, said)
				assert.Contains(t, said[0], "installing it: apt-get install -y debootstrap", "it says what it installs")
			}
		})
	}
}

func TestStageOf(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "downloading packages", stageOf("I: Retrieving libc6 2.36-9"))
	assert.Equal(t, "unpacking packages", stageOf("I: Unpacking the base system..."))
	assert.Equal(t, "configuring packages", stageOf("I: Configuring postgresql-15..."))
	assert.Equal(t, "", stageOf("Selecting previously unselected package libc6."))
	assert.Equal(t, "", stageOf("I: Something new"))
}

func TestLogPathIsOnePerReference(t *testing.T) {
	t.Parallel()
	assert.NotEqual(t, LogPath("aidb.local/postgres:15"), LogPath("aidb.local/postgres:17"))
	assert.NotContains(t, strings.TrimPrefix(LogPath("a/b:c"), "/"), ":")
}
