/*
 * sim_net.c
 *    The simulated network: a seeded PRNG, a pool of messages in flight
 *    ordered by delivery time, and the faults a real network has (loss,
 *    duplication, delay and hence reordering, partitions).
 *
 * A message is delivered at the time drawn when it was sent; equal times
 * are broken by send order, so a run depends on nothing but the seed.  A
 * node's messages to itself never fail (they stand for a local call).
 * Partitions are checked at delivery, so messages in flight when a
 * partition starts are cut too.
 */
#include <string.h>

#include "sim.h"

static bool msg_before(const sim *s, int a, int b);
static void heap_push(sim *s, int slot);

/*
 * sim_rand is splitmix64: tiny, fast, good enough to drive a simulation,
 * and identical on every platform.
 */
uint64_t
sim_rand(sim_rng *r)
{
	uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* sim_rand_range draws uniformly in [lo, hi]. */
int64_t
sim_rand_range(sim_rng *r, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t) (sim_rand(r) % (uint64_t) (hi - lo + 1));
}

/* sim_chance is true per_mille times in a thousand. */
bool
sim_chance(sim_rng *r, int per_mille)
{
	return per_mille > 0 && (int) (sim_rand(r) % 1000) < per_mille;
}

/* sim_net_init empties the network: every slot free, nothing cut. */
void
sim_net_init(sim *s)
{
	int i;

	s->n_free = SIM_MAX_MSGS;
	for (i = 0; i < SIM_MAX_MSGS; i++)
		s->free_slots[i] = SIM_MAX_MSGS - 1 - i;
	s->heap_len = 0;
	s->seq = 0;
	s->partitioned = false;
	memset(s->side, 0, sizeof(s->side));
}

/*
 * sim_msg_new takes a free slot and fills its header; the caller fills the
 * payload and calls sim_send.  NULL when the pool is exhausted (the send is
 * then a loss).
 */
sim_msg *
sim_msg_new(sim *s, sim_msg_type type, int from, int to)
{
	sim_msg *m;

	if (s->n_free == 0)
	{
		s->dropped++;
		return NULL;
	}
	m = &s->msgs[s->free_slots[s->n_free - 1]];
	m->type = type;
	m->from = from;
	m->to = to;
	m->from_inc = s->nodes[from].inc;
	m->to_inc = 0;
	m->round = -1;
	m->standing = false;
	return m;
}

/* msg_before orders slots by delivery time, then send order. */
static bool
msg_before(const sim *s, int a, int b)
{
	const sim_msg *x = &s->msgs[a];
	const sim_msg *y = &s->msgs[b];

	return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

/* heap_push inserts a slot into the delivery heap. */
static void
heap_push(sim *s, int slot)
{
	int i = s->heap_len++;

	s->heap[i] = slot;
	while (i > 0)
	{
		int parent = (i - 1) / 2;
		int tmp;

		if (!msg_before(s, s->heap[i], s->heap[parent]))
			break;
		tmp = s->heap[i];
		s->heap[i] = s->heap[parent];
		s->heap[parent] = tmp;
		i = parent;
	}
}

/*
 * sim_send puts the message (taken from sim_msg_new) in flight, or loses
 * it, and maybe sends a duplicate with its own delay.
 */
void
sim_send(sim *s, sim_msg *m)
{
	int slot = (int) (m - s->msgs);
	bool local = m->from == m->to;

	s->n_free--;
	s->sent++;
	if (!local && sim_chance(&s->rng, s->loss_pm))
	{
		s->free_slots[s->n_free++] = slot;
		s->dropped++;
		return;
	}

	if (local)
		m->at = s->now + sim_rand_range(&s->rng, 1, SIM_DELAY_MIN);
	else if (sim_chance(&s->rng, s->slow_pm))
		m->at = s->now + sim_rand_range(&s->rng, SIM_DELAY_MIN, SIM_SLOW_MAX);
	else
		m->at = s->now + sim_rand_range(&s->rng, SIM_DELAY_MIN, SIM_DELAY_MAX);
	m->seq = s->seq++;
	heap_push(s, slot);

	if (!local && sim_chance(&s->rng, s->dup_pm) && s->n_free > 0)
	{
		sim_msg *d = &s->msgs[s->free_slots[s->n_free - 1]];
		int dslot = (int) (d - s->msgs);

		*d = *m;
		s->n_free--;
		d->at = s->now + sim_rand_range(&s->rng, SIM_DELAY_MIN, SIM_SLOW_MAX);
		d->seq = s->seq++;
		heap_push(s, dslot);
	}
}

/* sim_net_peek is the next message to deliver, NULL if none. */
sim_msg *
sim_net_peek(sim *s)
{
	return s->heap_len > 0 ? &s->msgs[s->heap[0]] : NULL;
}

/* sim_net_pop removes the message sim_net_peek returned and frees it. */
void
sim_net_pop(sim *s)
{
	int slot = s->heap[0];
	int i = 0;

	s->heap[0] = s->heap[--s->heap_len];
	for (;;)
	{
		int l = 2 * i + 1;
		int r = l + 1;
		int m = i;
		int tmp;

		if (l < s->heap_len && msg_before(s, s->heap[l], s->heap[m]))
			m = l;
		if (r < s->heap_len && msg_before(s, s->heap[r], s->heap[m]))
			m = r;
		if (m == i)
			break;
		tmp = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = tmp;
		i = m;
	}
	s->free_slots[s->n_free++] = slot;
}

/*
 * sim_partition splits the nodes in two random non-empty sides until the
 * given time.  Either side may hold a majority, or neither (n even never
 * happens here, but a side may be a minority with the others crashed).
 */
void
sim_partition(sim *s, int64_t until)
{
	int i;
	int n0 = 0;

	for (i = 0; i < s->n; i++)
	{
		s->side[i] = (int) (sim_rand(&s->rng) % 2);
		n0 += s->side[i] == 0;
	}
	if (n0 == 0 || n0 == s->n)
		s->side[sim_rand(&s->rng) % (uint64_t) s->n] ^= 1;
	s->partitioned = true;
	s->partition_end = until;
	s->partitions++;
	sim_trace(s, "partition until %lld", (long long) until);
}

/* sim_partition_heal joins the sides again. */
void
sim_partition_heal(sim *s)
{
	s->partitioned = false;
	sim_trace(s, "partition healed");
}

/* sim_link_cut: is the link between two nodes cut by the partition? */
bool
sim_link_cut(const sim *s, int from, int to)
{
	return s->partitioned && s->side[from] != s->side[to];
}

/*
 * sim_intern returns the fixture's own copy of a string (NULL stays NULL).
 * The core borrows value strings, so whatever outlives a message (acceptor
 * state, messages in flight) must point at storage the fixture owns.  Equal
 * strings share one copy, so pointers can be compared.
 */
const char *
sim_intern(sim *s, const char *str)
{
	size_t len;
	int i;

	if (str == NULL)
		return NULL;
	if ((uintptr_t) str >= (uintptr_t) s->arena &&
		(uintptr_t) str < (uintptr_t) (s->arena + s->arena_used))
		return str; /* already the fixture's own copy */
	for (i = 0; i < s->n_strings; i++)
	{
		if (s->strings[i] == str || strcmp(s->strings[i], str) == 0)
			return s->strings[i];
	}
	len = strlen(str) + 1;
	if (s->n_strings == SIM_MAX_STRINGS || s->arena_used + len > SIM_ARENA)
	{
		sim_fail(s, "string arena full interning \"%.40s\"", str);
		return s->strings[0];
	}
	memcpy(s->arena + s->arena_used, str, len);
	s->strings[s->n_strings++] = s->arena + s->arena_used;
	s->arena_used += len;
	return s->strings[s->n_strings - 1];
}
