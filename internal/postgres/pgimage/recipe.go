package pgimage

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Recipe says how a local build stands in for an image reference that
// cannot be pulled: which Debian release, which packages, and under which
// local tag.
type Recipe struct {
	// For is the image reference the build stands in for, as people write
	// it: postgres:15, pgvector/pgvector:pg17.
	For string
	// Tag is the local reference the build is tagged with (under
	// aidb.local/, which can never be pulled from).
	Tag string
	// Major is the PostgreSQL major version it runs.
	Major string
	// Suite is the Debian release the packages come from.
	Suite string
	// Packages are what the build installs: into the debootstrap of Suite
	// for a base recipe, or as one layer on Base's image.
	Packages []string
	// Base, when set, is the recipe whose image this one adds Packages to
	// (one layer), so that two images of one release share one debootstrap.
	Base *Recipe
	// Name is the image's aidb.image label: postgres or pgvector.
	Name string
}

// LocalHost is the registry host local builds are tagged under.
const LocalHost = "aidb.local"

var (
	postgres15 = Recipe{For: "postgres:15", Tag: LocalRepository + ":15", Major: "15", Suite: "bookworm",
		Packages: []string{"postgresql-15"}, Name: "postgres"}
	postgres17 = Recipe{For: "postgres:17", Tag: LocalRepository + ":17", Major: "17", Suite: "trixie",
		Packages: []string{"postgresql-17"}, Name: "postgres"}
	pgvector17 = Recipe{For: "pgvector/pgvector:pg17", Tag: LocalHost + "/pgvector:pg17", Major: "17", Suite: "trixie",
		Packages: []string{"postgresql-17-pgvector"}, Base: &postgres17, Name: "pgvector"}
)

// Recipes are the images a local build can stand in for: postgres:15
// (Debian 12's postgresql-15), postgres:17 (Debian 13's postgresql-17) and
// pgvector/pgvector:pg17 (postgres:17's image plus Debian 13's
// postgresql-17-pgvector). Debian 12 ships neither 17 nor pgvector; Debian 13
// ships no 15.
func Recipes() []Recipe { return []Recipe{postgres15, postgres17, pgvector17} }

// UnbuildableError says no recipe stands in for Ref; Known lists the
// references that have one.
type UnbuildableError struct {
	Ref   string
	Known []string
}

func (e *UnbuildableError) Error() string {
	return fmt.Sprintf("aidb cannot build a stand-in for image %s: it builds %s (from Debian's packages); name one of those in the compose file, or load the image with docker load",
		e.Ref, strings.Join(e.Known, ", "))
}

// tagMajor reads the major version at the start of a tag: 15 in "15",
// "15.4", "15-bookworm"; "" when the tag starts otherwise.
var tagMajor = regexp.MustCompile(`^([0-9]+)(?:[.-].*)?$`)

// pgvectorMajor reads the major version of a pgvector/pgvector tag: 17 in
// "pg17", "pg17-trixie", "0.8.0-pg17".
var pgvectorMajor = regexp.MustCompile(`^(?:[0-9][0-9.]*-)?pg([0-9]+)(?:-.*)?$`)

// RecipeFor is the recipe that stands in for ref: a postgres image of a
// major Debian ships (postgres:15, postgres:15.4-bookworm, postgres:17), the
// pgvector image of PostgreSQL 17 (pgvector/pgvector:pg17, …:0.8.0-pg17), or
// a local build's own tag (aidb.local/postgres:17, aidb.local/pgvector:pg17).
// Any other reference is an UnbuildableError.
func RecipeFor(ref string) (Recipe, error) {
	var known []string
	for _, r := range Recipes() {
		known = append(known, r.For)
	}
	unbuildable := &UnbuildableError{Ref: ref, Known: known}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return Recipe{}, unbuildable
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return Recipe{}, unbuildable
	}
	name, tag := reference.FamiliarName(named), tagged.Tag()
	for _, r := range Recipes() {
		local, _ := reference.ParseNormalizedNamed(r.Tag)
		if name == reference.FamiliarName(local) && tag == local.(reference.Tagged).Tag() {
			return r, nil
		}
	}
	var major string
	switch name {
	case "postgres":
		if m := tagMajor.FindStringSubmatch(tag); m != nil {
			major = m[1]
		}
	case "pgvector/pgvector":
		if m := pgvectorMajor.FindStringSubmatch(tag); m != nil {
			major = m[1]
		}
	}
	for _, r := range Recipes() {
		forName, _ := reference.ParseNormalizedNamed(r.For)
		if major != "" && r.Major == major && reference.FamiliarName(forName) == name {
			return r, nil
		}
	}
	return Recipe{}, unbuildable
}

// extensionImages names, for extensions that come with no postgres image,
// an image that has them.
var extensionImages = map[string]string{
	"vector": pgvector17.For,
}

// ImageWith names an image that has the extension, for those that come
// with no postgres image (vector: pgvector/pgvector:pg17); "" for the rest.
func ImageWith(extension string) string { return extensionImages[extension] }
