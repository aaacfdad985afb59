package repository

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aidb/aidb/internal/fault"
)

// Scheme starts every repository URL.
const Scheme = "s3://"

// URL is a repository's place: a bucket and a prefix in it ("" or ending
// in "/"). A backup in it is named Scheme+Bucket+"/"+Prefix+file.
type URL struct {
	Bucket string
	Prefix string
}

// bucketRE is S3's rule for bucket names (3 to 63 lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit).
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// IsURL says whether s names something in a repository (it starts with
// s3://) rather than a file.
func IsURL(s string) bool { return strings.HasPrefix(strings.ToLower(s), Scheme) }

// ParseURL reads s3://BUCKET[/PREFIX][/]. A bad URL is bad input naming
// what is wrong.
func ParseURL(s string) (URL, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return URL{}, fault.BadInput(fmt.Errorf("repository %q: not an s3:// URL: write s3://BUCKET or s3://BUCKET/PREFIX", s))
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !bucketRE.MatchString(bucket) || strings.Contains(bucket, "..") {
		return URL{}, fault.BadInput(fmt.Errorf("repository %q: %q is no S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", s, bucket))
	}
	prefix = strings.Trim(prefix, "/")
	if strings.Contains(prefix, "//") {
		return URL{}, fault.BadInput(fmt.Errorf("repository %q: the prefix %q has an empty folder (//)", s, prefix))
	}
	if prefix != "" {
		prefix += "/"
	}
	return URL{Bucket: bucket, Prefix: prefix}, nil
}

// ParseObject reads the URL of one backup in a repository,
// s3://BUCKET[/PREFIX]/FILE: the repository it is in and its name there.
func ParseObject(s string) (URL, string, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	i := strings.LastIndex(rest, "/")
	if !ok || i < 0 || i == len(rest)-1 {
		return URL{}, "", fault.BadInput(fmt.Errorf("%q names no backup in a repository: write s3://BUCKET[/PREFIX]/FILE, as aidb list shows it", s))
	}
	u, err := ParseURL(Scheme + rest[:i])
	if err != nil {
		return URL{}, "", err
	}
	return u, rest[i+1:], nil
}

// String is the repository's URL, without a trailing slash.
func (u URL) String() string {
	return strings.TrimSuffix(Scheme+u.Bucket+"/"+u.Prefix, "/")
}

// Object is the URL of the file name in the repository.
func (u URL) Object(name string) string { return Scheme + u.Bucket + "/" + u.Prefix + name }

// key is the object key of the file name.
func (u URL) key(name string) string { return u.Prefix + name }
