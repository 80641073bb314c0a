/*
 * code_map: which row holds each short code, kept in memory, as a hint.
 *
 * A cache miss used to find its row in two B-tree descents: the code index
 * (code -> row id), then the table (row id -> row), about eight pages of a
 * file much larger than the CPU's TLB and caches. The map answers the first
 * one from memory, so a miss reads the table only.
 *
 * It is a hint, never the truth: each slot holds a row id and 7 bits of the
 * code's hash, not the code, so the caller reads the row and compares its
 * code, and falls back to the index when no row matches. An entry missing
 * (a link another process created, or one added while the map was full) or
 * a wrong one costs time, never a wrong answer. Codes are never removed
 * from the table (a deleted link keeps its row), so neither is an entry.
 *
 * One open-addressing table (linear probing) of 9 bytes a slot: the id and
 * a tag byte (0 = free). Finds take no lock: an add writes the id, then
 * publishes the tag with a release store. Adds are serialised by a mutex.
 * The table does not grow in place: once it is 80% full, the owner builds a
 * bigger one from the database (code_map_build_*) while finds and adds go
 * on; adds made during the build are replayed into the new table before it
 * replaces the old one.
 */
#ifndef SHORTD_CODE_MAP_H
#define SHORTD_CODE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct code_map;
struct code_table;

struct code_map_stats {
	uint64_t entries, slots, bytes;
	uint64_t builds; /* tables built (the first one included) */
};

struct code_map *code_map_new(void);
void code_map_free(struct code_map *m);

/* The hash of a code, as this map's adds and finds take it (the seed is
 * the map's own). */
uint64_t code_map_hash(const struct code_map *m, const char *code, size_t len);

/* Records that row id holds code (any thread). Returns 1 when the table
 * is missing or 80% full and no build is running: the caller should have
 * one built. An add to a table 90% full is dropped. */
int code_map_add(struct code_map *m, uint64_t hash, int64_t id);

/* Ids of the rows that may hold the code with this hash, in probe order,
 * at most max of them; returns how many. */
size_t code_map_find(struct code_map *m, uint64_t hash, int64_t *ids, size_t max);

/* Building a table: begin (adds from now on are also kept for the new
 * table), then read every code of a snapshot taken after begin into a
 * table of the snapshot's row count, then end (the new table, with the
 * kept adds, replaces the old one) or abort. One build at a time. */
void code_map_build_begin(struct code_map *m);
struct code_table *code_table_new(size_t rows);
void code_table_put(struct code_table *t, uint64_t hash, int64_t id);
void code_map_build_end(struct code_map *m, struct code_table *t);
void code_map_build_abort(struct code_map *m, struct code_table *t);

void code_map_get_stats(struct code_map *m, struct code_map_stats *out);

#endif
