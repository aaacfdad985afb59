package main

import (
	"runtime/debug"
	"strings"
)

// version overrides the version read from the build info when set at build
// time (-ldflags "-X main.version=v1.2.3").
var version = ""

// toolVersion is what aidb --version prints and manifests record: the
// module version and the VCS revision go build stamps in a git checkout,
// e.g. "devel (revision 0123abcd4567, 2026-01-02T03:04:05Z, modified)".
func toolVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return versionOf(version, info)
}

// versionOf formats a version from the -X override and the build info
// (nil when the binary carries none).
func versionOf(override string, info *debug.BuildInfo) string {
	v := override
	if v == "" && info != nil {
		v = info.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel" // built from a checkout, not a tagged module version
	}
	if info == nil {
		return v
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" && v != "devel" {
		return v // go install …@version: the module version is the whole story
	}
	if rev == "" {
		return v + " (no VCS revision: built outside a git checkout or with -buildvcs=false)"
	}
	details := []string{"revision " + rev}
	if when != "" {
		details = append(details, when)
	}
	if modified {
		details = append(details, "modified")
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}
