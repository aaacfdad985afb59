package seed

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// rng is a deterministic random source with helpers for sample values.
type rng struct{ *rand.Rand }

func newRNG(stream uint64) *rng { return &rng{rand.New(rand.NewPCG(0x61696462, stream))} }

// base is the seeded data's clock: fixed, so runs are identical.
var base = time.Date(2025, 5, 17, 9, 30, 0, 0, time.UTC)

// awkward are strings that break naive dump and restore paths: quotes,
// COPY's own escapes, newlines, tabs, unicode across planes, right-to-left
// text, and lookalikes of NULL.
var awkward = []string{
	`it's a "quoted" value`,
	"line one\nline two\r\nline three",
	`back\slash \N \\N and \t literal`,
	"tab\tseparated\tfields",
	"unicode: café, naïve, 日本語, Ελληνικά, emoji 🚀🧠",
	"right-to-left: שלום עולם مرحبا",
	"NULL",
	"",
	"semicolon; -- comment /* block */ $$dollar$$",
	"trailing space ",
	"zero width\u200bjoiner",
}

var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima
mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu
rule memory vector schema backup restore verify project session embedding index cluster`)

func (r *rng) words(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// text is a sentence, sometimes an awkward one, sometimes large.
func (r *rng) text(i int) string {
	switch {
	case i%97 == 13:
		// Large values: TOASTed, compressed, and split across COPY buffers.
		return r.words(8000 + r.IntN(8000))
	case i%7 == 3:
		return awkward[r.IntN(len(awkward))] + " #" + fmt.Sprint(i)
	default:
		return r.words(5+r.IntN(30)) + fmt.Sprintf(" (%d)", i)
	}
}

// maybe returns v, or nil one time in n.
func maybe[T any](r *rng, n int, v T) any {
	if r.IntN(n) == 0 {
		return nil
	}
	return v
}

func (r *rng) timeAt(i int) time.Time {
	return base.Add(time.Duration(i)*time.Minute + time.Duration(r.IntN(60_000_000))*time.Microsecond)
}

// jsonDoc is a jsonb document with nesting, arrays, unicode and escapes.
func (r *rng) jsonDoc(i int) map[string]any {
	doc := map[string]any{
		"i":       i,
		"score":   float64(r.IntN(100000)) / 1000,
		"enabled": r.IntN(2) == 0,
		"labels":  []any{r.words(1), r.words(1), nil},
		"nested":  map[string]any{"depth": 2, "note": awkward[i%len(awkward)]},
	}
	if i%5 == 0 {
		doc["empty"] = map[string]any{}
	}
	return doc
}

func (r *rng) uuid(i int) pgtype.UUID {
	var u [16]byte
	sum := sha256.Sum256(fmt.Appendf(nil, "session-%d", i))
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x40 // version 4 layout
	u[8] = (u[8] & 0x3f) | 0x80
	return pgtype.UUID{Bytes: u, Valid: true}
}

// embedding is a unit-ish vector of EmbeddingDim float32s.
func (r *rng) embedding() []float32 {
	v := make([]float32, EmbeddingDim)
	for j := range v {
		v[j] = float32(r.NormFloat64() * 0.05)
	}
	return v
}

// EmbeddingDim is the dimension the default memorydb schema checks.
const EmbeddingDim = 384
