/*
 * log.c
 *    Multi-Paxos log bookkeeping for one node: learned rounds, the apply
 *    cursor, the reach of the log, the next round to append to, the rounds
 *    to fill with a no-op, and the randomized backoff between attempts.
 *
 * Round r of the log is an independent single-decree Paxos instance.  A
 * node learns a round either because a proposer told it (learn) or by
 * running Paxos there itself; a round known to exist but never learned (a
 * proposer died between phase 2 and learn) is learned by proposing a no-op,
 * since phase 1 then finds and re-proposes whatever may have been chosen.
 * The log is applied strictly in round order, so one missing round holds
 * back everything after it: that is why the tracker points at it.
 *
 * Learned rounds are kept in a caller-owned bitmap used as a ring: round r
 * lives at bit r mod window while base <= r < base + window.
 */
#include "paxos_log.h"

#include <string.h>

static bool in_window(const px_log *log, int64_t round);
static bool bit_get(const px_log *log, int64_t round);
static void bit_put(px_log *log, int64_t round, bool on);
static void advance_learn_next(px_log *log);

/*
 * px_next_append_round: an append goes one past everything known, locally
 * or from acceptors, so that it does not start out competing with rounds
 * already in use (it may still lose its round and try the next one).
 */
int64_t
px_next_append_round(int64_t local_max_round, int64_t reported_max_round)
{
	int64_t max = local_max_round > reported_max_round ? local_max_round
													   : reported_max_round;

	if (max < -1)
		max = -1;
	return max + 1;
}

/*
 * px_backoff_us draws the wait before retrying after a preemption.  The
 * range doubles with each consecutive conflict (up to max_us), so that
 * duelling proposers quickly spread apart; drawing it at random, rather than
 * ordering proposers by id, favours nobody.  The shift is guarded against
 * overflow.
 */
int64_t
px_backoff_us(int conflicts, uint64_t random, int64_t base_us, int64_t max_us)
{
	int64_t limit;

	if (base_us <= 0 || max_us <= 0)
		return 0;
	if (conflicts < 0)
		conflicts = 0;
	if (conflicts >= 62 || base_us > (max_us >> conflicts))
		limit = max_us;
	else
		limit = base_us << conflicts;
	return (int64_t) (random % (uint64_t) limit);
}

/* in_window: does the bitmap currently hold round? */
static bool
in_window(const px_log *log, int64_t round)
{
	return round >= log->base && round - log->base < log->window;
}

/* bit_get reads the learned bit of a round inside the window. */
static bool
bit_get(const px_log *log, int64_t round)
{
	int64_t i = round % log->window;

	return (log->bits[i / 8] >> (i % 8)) & 1;
}

/* bit_put sets or clears the learned bit of a round inside the window. */
static void
bit_put(px_log *log, int64_t round, bool on)
{
	int64_t i = round % log->window;

	if (on)
		log->bits[i / 8] |= (uint8_t) (1u << (i % 8));
	else
		log->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/*
 * advance_learn_next moves the learned-prefix mark over learned rounds, so
 * that gaps are found without scanning from the start each time.
 */
static void
advance_learn_next(px_log *log)
{
	while (in_window(log, log->learn_next) && bit_get(log, log->learn_next))
		log->learn_next++;
}

/*
 * px_log_init: everything from first_round on is unknown; rounds below it
 * count as learned and applied (they were compacted before a restart).
 */
int
px_log_init(px_log *log, uint8_t *bits, size_t nbytes, int64_t first_round)
{
	if (log == NULL || bits == NULL || nbytes == 0 || first_round < 0 ||
		nbytes > (size_t) (INT64_MAX / 8))
		return PX_LOG_EARG;

	memset(bits, 0, nbytes);
	log->bits = bits;
	log->window = (int64_t) nbytes * 8;
	log->base = first_round;
	log->apply_next = first_round;
	log->learn_next = first_round;
	log->max_learned = first_round - 1;
	log->max_known = first_round - 1;
	return PX_LOG_OK;
}

/*
 * px_log_learn (learn): mark a round learned.  A round beyond the window is
 * refused rather than wrapping onto an older round's bit; the caller keeps
 * the value durable anyway and records the round after compacting.
 */
int
px_log_learn(px_log *log, int64_t round)
{
	if (round < 0)
		return PX_LOG_EARG;
	if (round < log->base)
		return 0;
	if (!in_window(log, round))
		return PX_LOG_EWINDOW;
	if (bit_get(log, round))
		return 0;

	bit_put(log, round, true);
	if (round > log->max_learned)
		log->max_learned = round;
	px_log_note_round(log, round);
	advance_learn_next(log);
	return 1;
}

/* px_log_is_learned: compacted rounds were learned before being dropped. */
bool
px_log_is_learned(const px_log *log, int64_t round)
{
	if (round < 0)
		return false;
	if (round < log->base)
		return true;
	return in_window(log, round) && bit_get(log, round);
}

/*
 * px_log_note_round: the log reaches at least this far, so every round up
 * to it must eventually be learned here before applying can pass it.
 */
void
px_log_note_round(px_log *log, int64_t round)
{
	if (round > log->max_known)
		log->max_known = round;
}

/* px_log_next_to_apply: the cursor's round if it is learned, else -1. */
int64_t
px_log_next_to_apply(const px_log *log)
{
	return px_log_is_learned(log, log->apply_next) ? log->apply_next : -1;
}

/*
 * px_log_mark_applied: applying is strictly in order and each round once,
 * so anything but the cursor's (learned) round is an error.
 */
int
px_log_mark_applied(px_log *log, int64_t round)
{
	if (round != log->apply_next || !px_log_is_learned(log, round))
		return PX_LOG_EORDER;
	log->apply_next++;
	return PX_LOG_OK;
}

/*
 * px_log_next_noop_round: the first hole in the learned log at or after
 * from, up to the known reach of the log.  Holes beyond the window cannot
 * be recorded yet, so they are not reported either.
 */
int64_t
px_log_next_noop_round(const px_log *log, int64_t from)
{
	int64_t r = from > log->learn_next ? from : log->learn_next;

	for (; r <= log->max_known && in_window(log, r); r++)
	{
		if (!bit_get(log, r))
			return r;
	}
	return -1;
}

/* px_log_next_append_round: one past all this node knows or was told. */
int64_t
px_log_next_append_round(const px_log *log, int64_t reported_max_round)
{
	return px_next_append_round(log->max_known, reported_max_round);
}

/*
 * px_log_compact drops applied rounds from the window.  Their bits are
 * cleared so that the ring can hold the rounds that take their place.
 */
int
px_log_compact(px_log *log, int64_t round)
{
	int64_t r;

	if (round > log->apply_next)
		return PX_LOG_EORDER;
	for (r = log->base; r < round; r++)
		bit_put(log, r, false);
	if (round > log->base)
		log->base = round;
	advance_learn_next(log);
	return PX_LOG_OK;
}

/*
 * px_log_truncation_point: a round may be truncated only when no member
 * will ever need to learn it again, i.e. below the slowest apply cursor.
 */
int64_t
px_log_truncation_point(const int64_t *apply_next, int n_members)
{
	int64_t min;
	int i;

	if (apply_next == NULL || n_members < 1)
		return -1;
	min = apply_next[0];
	for (i = 1; i < n_members; i++)
	{
		if (apply_next[i] < min)
			min = apply_next[i];
	}
	return min;
}

/*
 * px_log_read_ready: the read must see every round decided before it
 * began, so the apply cursor must be past max_group_round.
 */
bool
px_log_read_ready(const px_log *log, int64_t max_group_round)
{
	return log->apply_next > max_group_round;
}
