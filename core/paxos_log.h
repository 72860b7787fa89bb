/*
 * paxos_log.h
 *    Bookkeeping of one node's view of a Multi-Paxos log: which rounds it
 *    has learned, how far it has applied them, how far the log is known to
 *    reach, and hence which rounds it must learn by proposing a no-op.
 *
 * Like the rest of the core this does no I/O and no allocation: the caller
 * hands in the storage of a window of rounds (a bitmap, one bit per round)
 * and rebuilds the tracker from its durable state after a restart (learned
 * rounds are the decided ones; the apply cursor is durable in its own
 * right).  Rounds below the window's base are compacted: learned, applied
 * and forgotten.
 *
 * Rounds are numbered from 0; -1 means "none".
 */
#ifndef PAXOS_LOG_H
#define PAXOS_LOG_H

#include "paxos_core.h"

/* Status codes of px_log_* functions (0 or positive: success). */
#define PX_LOG_OK      0
#define PX_LOG_EARG    (-1) /* bad argument */
#define PX_LOG_EWINDOW (-2) /* round beyond the window: compact first */
#define PX_LOG_EORDER  (-3) /* apply/compact out of order */

typedef struct px_log
{
	int64_t base;        /* lowest round tracked; below: compacted */
	int64_t apply_next;  /* apply cursor: rounds below are applied */
	int64_t learn_next;  /* rounds below are all learned */
	int64_t max_learned; /* highest learned round, -1: none */
	/* highest round known to exist (learned, accepted, reported): -1 none */
	int64_t max_known;
	uint8_t *bits;  /* caller's bitmap, bit = round mod window */
	int64_t window; /* rounds the bitmap holds: nbytes * 8 */
} px_log;

/*
 * px_log_init starts tracking at first_round (0 for a new log, or the
 * compaction point after a restart), with every round from it on unlearned
 * and unapplied.  bits must hold nbytes bytes and outlive the tracker; the
 * window is nbytes * 8 rounds.  Returns PX_LOG_EARG on bad arguments.
 */
int px_log_init(px_log *log, uint8_t *bits, size_t nbytes,
				int64_t first_round);

/*
 * px_log_learn records that round is learned (its value known chosen).
 * Returns 1 if it was new, 0 if already known (or compacted),
 * PX_LOG_EWINDOW if the round is beyond the window, PX_LOG_EARG if < 0.
 */
int px_log_learn(px_log *log, int64_t round);

/* px_log_is_learned: is round learned (compacted rounds are)? */
bool px_log_is_learned(const px_log *log, int64_t round);

/*
 * px_log_note_round records that round exists somewhere (an acceptor
 * accepted a value in it, or reported it as its highest round).
 */
void px_log_note_round(px_log *log, int64_t round);

/*
 * px_log_next_to_apply is the round to apply next, or -1 when the apply
 * cursor's round is not learned yet (apply strictly in order).
 */
int64_t px_log_next_to_apply(const px_log *log);

/*
 * px_log_mark_applied advances the apply cursor past round, which must be
 * px_log_next_to_apply(); PX_LOG_EORDER otherwise.
 */
int px_log_mark_applied(px_log *log, int64_t round);

/*
 * px_log_next_noop_round is the lowest round >= from that is known to exist
 * (<= max_known) but not learned: the caller learns it by proposing a no-op
 * there (phase 1 finds whatever was accepted).  -1 when there is none.
 */
int64_t px_log_next_noop_round(const px_log *log, int64_t from);

/*
 * px_log_next_append_round is the round an append should try next, given
 * the highest round acceptors reported: px_next_append_round over what this
 * log knows.
 */
int64_t px_log_next_append_round(const px_log *log,
								 int64_t reported_max_round);

/*
 * px_log_compact forgets rounds below round, which must all be applied
 * (round <= apply_next); PX_LOG_EORDER otherwise.  Frees window space.
 */
int px_log_compact(px_log *log, int64_t round);

/*
 * px_log_truncation_point is the round below which every member has
 * applied the log, given each member's apply cursor: rounds below it may be
 * truncated everywhere.  -1 when n_members < 1.
 */
int64_t px_log_truncation_point(const int64_t *apply_next, int n_members);

/*
 * px_log_read_ready: a strong (linearizable) read that began when
 * max_group_round was the highest round decided in the group may run once
 * the node has applied every round up to it.
 */
bool px_log_read_ready(const px_log *log, int64_t max_group_round);

#endif /* PAXOS_LOG_H */
