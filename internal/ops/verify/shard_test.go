package verify

import (
	"fmt"
	"slices"
	"testing"
)

func TestShardsSplitEachFileIntoExactlyOne(t *testing.T) {
	t.Parallel()
	var files []string
	for i := range 200 {
		files = append(files, fmt.Sprintf("backups/rulesdb-20261130-%06d.sql", i))
	}
	for _, n := range []int{1, 2, 3, 7} {
		seen := map[string]int{}
		for i := 1; i <= n; i++ {
			part := Shard{I: i, N: n}.Of(files)
			if n > 1 && (len(part) == 0 || len(part) == len(files)) {
				t.Errorf("shard %d/%d holds %d of %d files: not a split", i, n, len(part), len(files))
			}
			for _, f := range part {
				seen[f]++
			}
		}
		for _, f := range files {
			if seen[f] != 1 {
				t.Fatalf("n=%d: %s is in %d shards, want exactly 1", n, f, seen[f])
			}
		}
	}
	// By name, not by place: another order, another folder, the same split.
	rev := slices.Clone(files)
	slices.Reverse(rev)
	a := Shard{I: 2, N: 3}.Of(files)
	b := Shard{I: 2, N: 3}.Of(rev)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Error("the split depends on the order of the list")
	}
	if got := (Shard{I: 1, N: 2}).Of([]string{"/x/a.sql"}); len((Shard{I: 2, N: 2}).Of([]string{"/y/a.sql"}))+len(got) != 1 {
		t.Error("one file name falls in one shard, whatever its folder")
	}
}

func TestParseShard(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Shard{"1/1": {1, 1}, "2/4": {2, 4}, "4/4": {4, 4}} {
		got, err := ParseShard(in)
		if err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0/2", "3/2", "1/0", "a/b", "2", "1/2/3", "-1/2"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) accepted", in)
		}
	}
}
