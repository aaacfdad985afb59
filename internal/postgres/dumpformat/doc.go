// Package pgdump knows pg_dump's plain format: how a plain dump starts and
// ends, its COPY blocks (the header, COPY's text escapes, the end marker),
// the tables it creates and loads, the sequence values it sets; the pieces
// aidb writes into a dump of its own (a table's data header, the end
// marker, the closing comment held back); and the session settings that
// every content hash depends on, written once and rendered as SET and SET
// LOCAL statements and as PGOPTIONS. It depends on nothing of aidb's: it
// is the bottom layer, which fingerprint, backup, restore and the
// orchestrator all use.
package dumpformat
