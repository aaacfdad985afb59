package verify

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
)

// The three outcomes of a file, as CI systems read them: a pass, a
// failure (a difference) and an error (could not be verified).
var threeResults = []Result{
	{File: "backups/rulesdb-20250102-030405.sql.gz", Database: "rulesdb", Kind: backupfile.Full, OK: true, Tables: 3, Rows: 10, Seconds: 1.5, Differences: []string{}},
	{File: "backups/memorydb-20250102-030405.sql", Database: "memorydb", Kind: backupfile.Full, Seconds: 2.25,
		Differences: []string{"public.memories: 4 rows, the backup has 5", "schema: hash 0123456789ab, the backup has ba9876543210"}},
	{File: "backups/rulesdb-data-20250102-030405.sql", Database: "rulesdb", Kind: backupfile.Data, Seconds: 0.125, Differences: []string{},
		Error: `start a throwaway container: image "aidb.local/postgres:15" <not found> & gone`},
}

func TestWriteJUnitPassDifferenceAndError(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, WriteJUnit(&out, threeResults))
	want := xml.Header + `<testsuites>
  <testsuite name="aidb verify" tests="3" failures="1" errors="1" time="3.875">
    <testcase name="rulesdb-20250102-030405.sql.gz" classname="aidb.verify.rulesdb" time="1.500"></testcase>
    <testcase name="memorydb-20250102-030405.sql" classname="aidb.verify.memorydb" time="2.250">
      <failure message="differs from its manifest">public.memories: 4 rows, the backup has 5&#xA;schema: hash 0123456789ab, the backup has ba9876543210</failure>
    </testcase>
    <testcase name="rulesdb-data-20250102-030405.sql" classname="aidb.verify.rulesdb" time="0.125">
      <error message="could not verify">start a throwaway container: image &#34;aidb.local/postgres:15&#34; &lt;not found&gt; &amp; gone</error>
    </testcase>
  </testsuite>
</testsuites>
`
	assert.Equal(t, want, out.String())

	// What a JUnit reader sees: the markup escaped, the texts intact.
	var got junitSuites
	require.NoError(t, xml.Unmarshal(out.Bytes(), &got))
	require.Len(t, got.Suites, 1)
	cases := got.Suites[0].Cases
	require.Len(t, cases, 3)
	assert.Nil(t, cases[0].Failure)
	assert.Nil(t, cases[0].Error)
	require.NotNil(t, cases[1].Failure)
	assert.Equal(t, "public.memories: 4 rows, the backup has 5\nschema: hash 0123456789ab, the backup has ba9876543210", cases[1].Failure.Text)
	assert.Nil(t, cases[1].Error)
	require.NotNil(t, cases[2].Error)
	assert.Equal(t, threeResults[2].Error, cases[2].Error.Text)
	assert.Nil(t, cases[2].Failure)
}

func TestWriteJUnitWithNoResults(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, WriteJUnit(&out, nil))
	assert.Equal(t, xml.Header+`<testsuites>
  <testsuite name="aidb verify" tests="0" failures="0" errors="0" time="0.000"></testsuite>
</testsuites>
`, out.String())
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestWriteJUnitReportsAWriteError(t *testing.T) {
	t.Parallel()
	for n := range 3 {
		err := WriteJUnit(&failingWriter{n: n}, threeResults)
		assert.EqualError(t, err, "disk full", "failing write %d", n+1)
	}
}
