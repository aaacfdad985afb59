package seed

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// generate renders every row of every table as text.
func generate(s Seeder, rows int) map[string][]string {
	out := map[string][]string{}
	for ti, t := range s.tables(rows) {
		r := newRNG(uint64(ti + 1))
		for i := range t.rows {
			out[t.name] = append(out[t.name], fmt.Sprint(t.row(r, i)...))
		}
	}
	return out
}

func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"rulesdb", "memorydb"} {
		s, ok := For(db)
		require.True(t, ok)
		assert.Equal(t, generate(s, 200), generate(s, 200), db)
	}
}

func TestEveryTableGetsRowsAtEverySize(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"rulesdb", "memorydb"} {
		s, _ := For(db)
		for _, rows := range []int{2, 3, 10, 97, 1000} {
			for _, tb := range s.tables(rows) {
				assert.Positive(t, tb.rows, "%s.%s at %d rows", db, tb.name, rows)
			}
		}
	}
}

// The generated keys satisfy the schema's constraints: primary keys are
// unique, foreign keys point at generated rows, links never point at
// themselves.
func TestKeysSatisfyConstraints(t *testing.T) {
	t.Parallel()
	for _, rows := range []int{2, 3, 10, 101} {
		rt := byName(rulesTables(rows))
		projects := rt["projects"].rows
		r := newRNG(1)
		for i := range rt["rules"].rows {
			v := rt["rules"].row(r, i)
			assert.LessOrEqual(t, v[1].(int64), int64(projects))
		}
		seen := map[[2]int64]bool{}
		for i := range rt["rule_tags"].rows {
			v := rt["rule_tags"].row(r, i)
			k := [2]int64{v[0].(int64), int64(v[1].(int32))}
			assert.False(t, seen[k], "rule_tags %v repeats at %d rows", k, rows)
			seen[k] = true
			assert.LessOrEqual(t, k[0], int64(rows))
			assert.LessOrEqual(t, k[1], int64(rt["tags"].rows))
		}

		mt := byName(memoryTables(rows))
		links := map[string]bool{}
		for i := range mt["memory_links"].rows {
			v := mt["memory_links"].row(r, i)
			from, to, rel := v[0].(int64), v[1].(int64), v[2].(string)
			assert.NotEqual(t, from, to)
			assert.LessOrEqual(t, from, int64(rows))
			assert.GreaterOrEqual(t, to, int64(1))
			key := fmt.Sprint(from, to, rel)
			assert.False(t, links[key], "link %s repeats", key)
			links[key] = true
		}
	}
}

func TestEmbeddingDimension(t *testing.T) {
	t.Parallel()
	assert.Len(t, newRNG(1).embedding(), EmbeddingDim)
}

func byName(ts []table) map[string]table {
	m := map[string]table{}
	for _, t := range ts {
		m[t.name] = t
	}
	return m
}

// An embedding is written as pgvector's vector_recv reads it.
func TestEncodeVector(t *testing.T) {
	t.Parallel()
	got, err := encodeVector{}.Encode([]float32{1, -0.5}, []byte{0xff})
	require.NoError(t, err)
	assert.Equal(t, []byte{0xff, 0, 2, 0, 0, 0x3f, 0x80, 0, 0, 0xbf, 0, 0, 0}, got)
	assert.NotNil(t, vectorCodec{}.PlanEncode(nil, 0, 1, []float32{}))
	assert.Nil(t, vectorCodec{}.PlanEncode(nil, 0, 0, []float32{}), "text is not written")
}
