package backupfile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNameAndParseRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 5, 17, 9, 30, 5, 0, time.UTC)
	for _, k := range []Kind{Full, Schema, Data} {
		for _, c := range []Compression{None, Gzip, Zstd} {
			name := Name("memorydb", k, at, c)
			p, ok := Parse(name)
			require.True(t, ok, name)
			assert.Equal(t, Parsed{Database: "memorydb", Kind: k, Created: at, Compression: c}, p, name)
		}
	}
	assert.Equal(t, "rulesdb-20250517-093005.sql", Name("rulesdb", Full, at, None), "the user story's names")
	assert.Equal(t, "memorydb-data-20250517-093005.sql", Name("memorydb", Data, at, None))
	assert.Equal(t, "memorydb-schema-20250517-093005.sql.zst", Name("memorydb", Schema, at.In(time.FixedZone("CEST", 7200)), Zstd), "UTC whatever the zone")
	for _, other := range []string{"rulesdb-latest.sql", "notes.txt", "rulesdb-20250517.sql", "x.sql.manifest.json", "rulesdb-20250517-093005.sql.partial"} {
		_, ok := Parse(other)
		assert.False(t, ok, other)
	}
}

func TestLatestNames(t *testing.T) {
	t.Parallel()
	for _, c := range []Compression{None, Gzip, Zstd, None.Sealed(), Gzip.Sealed(), Zstd.Sealed()} {
		for _, db := range []string{"rulesdb", "my-db", "a-latest"} {
			name := LatestName(db, c)
			got, gc, ok := ParseLatest(name)
			require.True(t, ok, name)
			assert.Equal(t, db, got, name)
			assert.Equal(t, c, gc, name)
			others := OtherLatestNames(db, c)
			assert.Len(t, others, 5, "one pointer per database, whatever its compression and sealing")
			assert.NotContains(t, others, name)
		}
	}
	assert.Equal(t, "memorydb-latest.sql.gz", LatestName("memorydb", Gzip))
	assert.Equal(t, "memorydb-latest.sql.zst.age", LatestName("memorydb", Zstd.Sealed()))
	for _, other := range []string{
		"rulesdb-latest.sql.bak", "rulesdb-latest.sql.manifest.json", "rulesdb-latest.sql~x.partial",
		"rulesdb-20250517-093005.sql", "-latest.sql", "rulesdb-latest.txt",
	} {
		_, _, ok := ParseLatest(other)
		assert.False(t, ok, "%s is no latest pointer", other)
	}
}

func TestSealedNames(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 5, 17, 9, 30, 5, 0, time.UTC)
	for c, want := range map[Compression]string{
		None.Sealed(): "rulesdb-20250517-093005.sql.age",
		Gzip.Sealed(): "rulesdb-20250517-093005.sql.gz.age",
		Zstd.Sealed(): "rulesdb-20250517-093005.sql.zst.age",
	} {
		name := Name("rulesdb", Full, at, c)
		assert.Equal(t, want, name)
		p, ok := Parse(name)
		require.True(t, ok, name)
		assert.Equal(t, c, p.Compression, name)
		assert.True(t, p.Compression.IsSealed(), name)
		assert.Equal(t, c, c.Sealed(), "sealing twice is sealing once")
	}
	assert.Equal(t, Zstd, Zstd.Sealed().Inner())
	assert.Equal(t, Zstd, Zstd.Inner())
	assert.False(t, Zstd.IsSealed())
	_, ok := Parse("rulesdb-20250517-093005.sql.age.zst")
	assert.False(t, ok, "compression after encryption is not a name aidb gives")
	_, err := ParseCompression("zstd+age")
	assert.Error(t, err, "encryption is not a compression to ask for: recipients decide it")
}

func TestParseCompression(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Compression{"": None, "none": None, "gzip": Gzip, "zstd": Zstd} {
		got, err := ParseCompression(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseCompression("lz4")
	assert.ErrorContains(t, err, `compression "lz4": use none, gzip or zstd`)
}
