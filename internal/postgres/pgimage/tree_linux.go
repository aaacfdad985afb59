package pgimage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// supported says whether this system can build the image: Linux can.
func supported() error { return nil }

// ownGroup runs cmd in a process group of its own, whose whole tree
// cancellation kills (killTree) along with what works inside root.
func ownGroup(cmd *exec.Cmd, root string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killTree(cmd.Process.Pid, root) }
}

// killTree ends a build step's whole process tree: every process of the
// process group pgid (debootstrap runs in a group of its own, with its wget,
// dpkg and chroot children), and every process whose root or working folder
// lies inside root (a daemon a package's postinst started in the chroot may
// have left the group). It then waits, up to 10 s, until none is left
// running.
func killTree(pgid int, root string) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := treeProcesses(pgid, root)
		if len(left) == 0 {
			return nil
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of the build in %s did not end", left, root)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// treeProcesses lists the live (not zombie) processes of group pgid or
// rooted or working inside root.
func treeProcesses(pgid int, root string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		state, group, ok := statFields(string(stat))
		if !ok || state == "Z" {
			continue
		}
		if group == pgid || inside(root, "/proc/"+e.Name()+"/root") || inside(root, "/proc/"+e.Name()+"/cwd") {
			out = append(out, pid)
		}
	}
	return out
}

func inside(root, link string) bool {
	target, err := os.Readlink(link)
	return err == nil && (target == root || strings.HasPrefix(target, root+"/"))
}

// unmountUnder detaches every mount below root, deepest first: debootstrap
// mounts proc, sysfs and device nodes into its target and, killed, cannot
// unmount them; removing the folder must not reach into them.
func unmountUnder(root string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, mp := range mountPoints(string(b)) {
		if strings.HasPrefix(mp, root+"/") {
			points = append(points, mp)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}
