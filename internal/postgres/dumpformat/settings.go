package dumpformat

import (
	"strings"
)

// A Setting is one session setting (a GUC) and the value it is given.
type Setting struct {
	Name, Value string
}

// ValueSettings are the session settings that decide how a value is
// written as text, as every content hash aidb takes or checks reads it:
// the time zone of timestamptz values, the date and interval styles, the
// digits of floats, bytea's format, and the search path (by which regclass
// and the other reg* types name objects: pg_dump's empty path and
// pg_catalog write the same). They are written here once and rendered for
// each place that needs them: the fingerprint's scan (SetStatements), a
// data-only restore's check in its transaction (SetLocal), pg_dump
// (DumpEnv) and the psql sessions that read a table in parts beside it
// (CopyEnv). If two of them differed, hashes would stop matching, without
// a word as to why.
//
// The order is the order of the statements; a new slice each call.
func ValueSettings() []Setting {
	return []Setting{
		{"TimeZone", "UTC"},
		{"DateStyle", "ISO, YMD"},
		{"IntervalStyle", "postgres"},
		{"extra_float_digits", "3"},
		{"bytea_output", "hex"},
		{"search_path", "pg_catalog"},
	}
}

// dumpSession are the settings pg_dump gives its own session besides the
// value settings (pg_dump.c, setup_connection): a session that reads rows
// beside pg_dump, in its snapshot, reads them under the same rules.
func dumpSession() []Setting {
	return []Setting{
		{"row_security", "off"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"synchronize_seqscans", "off"},
	}
}

// LoadSettings are the settings of a psql stream that loads a backup (a
// full restore with --jobs 1, a verification's fallback): they decide how
// fast its indexes are built, not what is loaded. An HNSW index (pgvector)
// is built far faster while its graph fits in maintenance_work_mem: 256MB
// holds the graph of about 100,000 embeddings of 384 dimensions (past that
// the build goes on, slower), where the server's default of 64MB holds a
// quarter of that. Parallel maintenance workers are off in a stream: a
// parallel HNSW build keeps its graph in shared memory of that size, and
// where /dev/shm is smaller (Docker's default is 64MB) the build fails
// with "could not resize shared memory segment" (SQLSTATE 53100), which a
// stream cannot take back. Statements aidb runs itself use
// BuildSettings and fall back to a serial build on that error.
func LoadSettings() []Setting {
	return append(BuildSettings(), Setting{"max_parallel_maintenance_workers", "0"})
}

// BuildSettings are the settings of a session in which aidb runs a
// load's statements itself (the parallel load, a data-only restore's
// index builds): LoadSettings' memory, with the server's parallel
// maintenance workers, since such a session retries a build serially when
// the parallel one finds /dev/shm too small (ShmExhausted).
func BuildSettings() []Setting {
	return []Setting{{"maintenance_work_mem", "256MB"}}
}

// ShmExhaustedState is the SQLSTATE (disk_full) of a parallel build whose
// shared memory did not fit in /dev/shm: "could not resize shared memory
// segment ... No space left on device". It fails at the build's start.
const ShmExhaustedState = "53100"

// SetStatements renders settings as SET statements, one each, without a
// semicolon: SET TimeZone = 'UTC'. The value is a string literal, which
// SET takes for every kind of setting.
func SetStatements(settings []Setting) []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = "SET " + s.Name + " = " + literal(s.Value)
	}
	return out
}

// SetLocal renders settings as a script of SET LOCAL statements, one a
// line: they last until the end of the transaction they run in.
func SetLocal(settings []Setting) string {
	var b strings.Builder
	for _, s := range settings {
		b.WriteString("SET LOCAL " + s.Name + " = " + literal(s.Value) + ";\n")
	}
	return b.String()
}

// PGOptions renders settings as libpq's PGOPTIONS (the connection's
// options): -c name=value, separated by spaces, a space or backslash in a
// value escaped with a backslash as the server reads them.
func PGOptions(settings []Setting) string {
	esc := strings.NewReplacer(`\`, `\\`, " ", `\ `)
	parts := make([]string, len(settings))
	for i, s := range settings {
		parts[i] = "-c " + s.Name + "=" + esc.Replace(s.Value)
	}
	return strings.Join(parts, " ")
}

// DumpEnv is the environment pg_dump runs with (KEY=value): the value
// settings. pg_dump sets DateStyle, IntervalStyle, extra_float_digits and
// the search path itself, to values that write the same; the time zone
// and bytea's format it leaves to the server's configuration, which is
// why they must come from here. With them every value in the file is
// written as the fingerprint writes it, so the rows' content hash can be
// taken from the stream.
func DumpEnv() []string {
	return []string{"PGOPTIONS=" + PGOptions(ValueSettings())}
}

// CopyEnv is the environment of a psql that reads a table's rows with
// COPY beside pg_dump, so that they are written as pg_dump writes them:
// the value settings, the rest of pg_dump's session settings, and the
// client encoding pg_dump uses (the database's: encoding).
func CopyEnv(encoding string) []string {
	return []string{
		"PGCLIENTENCODING=" + encoding,
		"PGOPTIONS=" + PGOptions(append(ValueSettings(), dumpSession()...)),
	}
}

// literal quotes s as an SQL string literal (standard_conforming_strings
// on, as it is by default since PostgreSQL 9.1 and in every dump).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
