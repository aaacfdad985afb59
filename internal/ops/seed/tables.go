package seed

import (
	"crypto/sha256"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

var ruleStatuses = []string{"draft", "active", "deprecated"}

// rulesTables scales rulesdb to rows rules: a project per 50 rules, two
// versions per rule, up to 50 tags, and up to two tags per rule.
func rulesTables(rows int) []table {
	projects := max(1, rows/50)
	tags := min(50, max(3, rows/10))
	return []table{
		{
			name:    "projects",
			columns: []string{"id", "slug", "name", "description", "settings", "created_at"},
			rows:    projects,
			serial:  "id",
			row: func(r *rng, i int) []any {
				return []any{int64(i + 1), fmt.Sprintf("project-%d", i+1), r.text(i), maybe(r, 4, r.text(i+1)), r.jsonDoc(i), r.timeAt(i)}
			},
		},
		{
			name:    "rules",
			columns: []string{"id", "project_id", "name", "status", "priority", "weight", "enabled", "conditions", "body", "created_at", "updated_at"},
			rows:    rows,
			serial:  "id",
			row: func(r *rng, i int) []any {
				// Active rules have unique names per project (a partial
				// unique index); the others may repeat names.
				status := ruleStatuses[i%len(ruleStatuses)]
				name := fmt.Sprintf("rule-%d", i+1)
				if status != "active" && i%4 == 0 {
					name = "shared-name"
				}
				var weight pgtype.Numeric
				_ = weight.Scan(fmt.Sprintf("%d.%04d", r.IntN(100000)-50000, r.IntN(10000)))
				return []any{
					int64(i + 1), int64(i%projects + 1), name, status, int32(r.IntN(1000) - 500),
					maybe(r, 5, weight), r.IntN(10) != 0, r.jsonDoc(i), r.text(i),
					r.timeAt(i), maybe(r, 2, r.timeAt(i+60)),
				}
			},
		},
		{
			// No id column: it is GENERATED ALWAYS, the server numbers the rows.
			name:    "rule_versions",
			columns: []string{"rule_id", "version", "body", "checksum", "author", "created_at"},
			rows:    rows * 2,
			row: func(r *rng, i int) []any {
				body := r.text(i)
				sum := sha256.Sum256([]byte(body))
				return []any{int64(i/2 + 1), int32(i%2 + 1), body, sum[:], maybe(r, 3, awkward[i%len(awkward)]), r.timeAt(i)}
			},
		},
		{
			name:    "tags",
			columns: []string{"id", "name", "color"},
			rows:    tags,
			serial:  "id",
			row: func(r *rng, i int) []any {
				return []any{int32(i + 1), fmt.Sprintf("%s-%d", r.words(1), i+1), maybe(r, 3, fmt.Sprintf("#%06x", r.IntN(1<<24)))}
			},
		},
		{
			// Rule i gets tags i%tags+1 and, for even i, (i+1)%tags+1: distinct
			// pairs, so the primary key holds.
			name:    "rule_tags",
			columns: []string{"rule_id", "tag_id", "added_on"},
			rows:    rows + (rows+1)/2,
			row: func(r *rng, i int) []any {
				rule, second := i, false
				if i >= rows {
					rule, second = (i-rows)*2, true
				}
				tag := rule%tags + 1
				if second {
					tag = (rule+1)%tags + 1
				}
				return []any{int64(rule + 1), int32(tag), r.timeAt(rule)}
			},
		},
	}
}

var memoryKinds = []string{"fact", "preference", "episode", "instruction"}

// memoryTables scales memorydb to rows memories: a session per 20 memories
// and about 1.3 links per memory.
func memoryTables(rows int) []table {
	sessions := max(1, rows/20)
	return []table{
		{
			name:    "sessions",
			columns: []string{"id", "user_ref", "started_at", "ended_at", "attributes"},
			rows:    sessions,
			row: func(r *rng, i int) []any {
				return []any{r.uuid(i), fmt.Sprintf("user-%d", i%97), r.timeAt(i), maybe(r, 3, r.timeAt(i+30)), maybe(r, 4, r.jsonDoc(i))}
			},
		},
		{
			name:    "memories",
			columns: []string{"id", "session_id", "kind", "content", "metadata", "embedding", "importance", "tags", "created_at"},
			rows:    rows,
			serial:  "id",
			row: func(r *rng, i int) []any {
				var session any
				if i%10 != 9 { // some memories belong to no session
					session = r.uuid(i % sessions)
				}
				tags := []pgtype.Text{{String: r.words(1), Valid: true}, {String: awkward[i%len(awkward)], Valid: true}}
				if i%6 == 0 {
					tags = append(tags, pgtype.Text{}) // a NULL element
				}
				return []any{
					int64(i + 1), session, memoryKinds[i%len(memoryKinds)], r.text(i), r.jsonDoc(i),
					r.embedding(), maybe(r, 5, r.Float64()), maybe(r, 7, tags), r.timeAt(i),
				}
			},
		},
		{
			// Memory i follows memory i-1; every third also relates to an
			// earlier one (self-referencing foreign keys).
			name:    "memory_links",
			columns: []string{"from_id", "to_id", "relation", "strength"},
			rows:    max(0, rows-1) + max(0, rows-1)/3,
			row: func(r *rng, i int) []any {
				if i < rows-1 {
					return []any{int64(i + 2), int64(i + 1), "follows", float32(1)}
				}
				from := (i-(rows-1))*3 + 2 // 2, 5, 8, ...: never 1
				to := 1 + r.IntN(from-1)   // an earlier memory: never itself
				return []any{int64(from), int64(to), "relates", float32(r.Float64())}
			},
		},
	}
}
