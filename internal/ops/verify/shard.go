package verify

import (
	"fmt"
	"hash/fnv"
	"path"
	"strconv"
	"strings"
)

// Shard is one of N parts of a list of backups, for CI runners that
// verify a folder between them: shard I of N (1 ≤ I ≤ N).
type Shard struct{ I, N int }

// ParseShard reads "I/N".
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Shard{}, fmt.Errorf("shard %q: write I/N with 1 ≤ I ≤ N, e.g. 2/4 for the second of four runners", s)
	}
	return Shard{I: i, N: n}, nil
}

// Of keeps the files of this shard. Each file falls in exactly one shard
// of N, by a hash of its name (not its place in the list), so a file
// stays in its shard as others come and go, and runners that list the
// same files in another order still split them the same way.
func (s Shard) Of(files []string) []string {
	var out []string
	for _, f := range files {
		h := fnv.New32a()
		h.Write([]byte(path.Base(strings.ReplaceAll(f, "\\", "/"))))
		if int(h.Sum32()%uint32(s.N)) == s.I-1 {
			out = append(out, f)
		}
	}
	return out
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }
