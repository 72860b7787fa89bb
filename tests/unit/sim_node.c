/*
 * sim_node.c
 *    One simulated node: the host of an acceptor (durable state per round,
 *    persisted before answering), of a learner (learn messages, catch-up
 *    from peers, applying the log in order) and of a proposer that runs the
 *    Multi-Paxos append loop of the pg_paxos README for its client:
 *
 *        round = next append round
 *        while paxos(round, v) != v: round = next append round
 *
 *    with randomized backoff after each preemption or timeout, retrying the
 *    same round (its value may have been chosen there), and no-op proposals
 *    for holes the node cannot learn otherwise.
 *
 * A crash loses everything volatile (proposer, log tracker, timers) and
 * bumps the node's incarnation, so answers meant for the old process are
 * dropped as a closed connection would drop them.  The durable acceptor
 * state and apply cursor survive.  A value in flight at a crash is
 * abandoned: its client never learns whether it was chosen, so it must
 * appear in the log at most once, and is not retried.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

static px_acceptor_state acc_load(const sim_node *nd, int64_t round);
static void acc_store(sim *s, sim_node *nd, int64_t round,
					  const px_acceptor_state *st);
static void learned(sim *s, sim_node *nd, int64_t round);
static void local_learn(sim *s, sim_node *nd, int64_t round,
						const px_ballot *b, px_value v);
static void resolve(sim *s, sim_node *nd);
static void start_attempt(sim *s, sim_node *nd, int64_t round, px_value v,
						  bool noop);
static void send_requests(sim *s, sim_node *nd, sim_msg_type type);
static void backoff(sim *s, sim_node *nd);
static void on_status(sim *s, sim_node *nd, px_status st);
static void on_chosen(sim *s, sim_node *nd);
static void keep_standing(sim *s, sim_node *nd);
static void on_prepare(sim *s, sim_node *nd, const sim_msg *m);
static void on_accept(sim *s, sim_node *nd, const sim_msg *m);
static void on_sync(sim *s, sim_node *nd, const sim_msg *m);
static bool round_ok(sim *s, int64_t round);

/*
 * sim_node_init creates a node that never ran: empty durable state, a
 * client with its values (data "n<i>:<k>", id the node's name, which is
 * also its proposer id), submitted at times drawn over the fault period,
 * some at burst instants shared by all clients so that proposers duel.
 */
void
sim_node_init(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];
	char buf[32];
	int k;

	nd->idx = idx;
	snprintf(nd->name, sizeof(nd->name), "n%d", idx);
	nd->up = true;
	nd->inc = 1;
	memset(nd->acc_used, 0, sizeof(nd->acc_used));
	nd->acc_max_round = -1;
	nd->applied_next = 0;
	px_standing_init(&nd->standing);

	nd->n_values =
		(int) sim_rand_range(&s->rng, s->cfg.min_values, s->cfg.max_values);
	nd->next_value = 0;
	for (k = 0; k < nd->n_values; k++)
	{
		snprintf(buf, sizeof(buf), "n%d:%d", idx, k);
		nd->values[k].id = sim_intern(s, nd->name);
		nd->values[k].data = sim_intern(s, buf);
		if (sim_chance(&s->rng, s->cfg.burst_pm))
			nd->avail_at[k] = s->bursts[sim_rand(&s->rng) % 4] +
							  sim_rand_range(&s->rng, 0, SIM_DELAY_MAX);
		else
			nd->avail_at[k] = sim_rand_range(&s->rng, 0, s->cfg.fault_end);
		nd->abandoned[k] = false;
		nd->acked_round[k] = -1;
	}
	/* the client submits in order */
	for (k = 1; k < nd->n_values; k++)
	{
		if (nd->avail_at[k] < nd->avail_at[k - 1])
			nd->avail_at[k] = nd->avail_at[k - 1];
	}
	nd->inc = 0;
	sim_node_restart(s, idx);
}

/*
 * sim_node_crash stops the node at once.  Its client gives up on the value
 * in flight (outcome unknown).
 */
void
sim_node_crash(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];

	if (!nd->up)
		return;
	sim_trace(s, "%s crashes", nd->name);
	if (nd->pstate != SIM_IDLE && !nd->noop)
	{
		nd->abandoned[nd->next_value] = true;
		nd->next_value++;
	}
	nd->up = false;
	nd->inc++;
	nd->pstate = SIM_IDLE;
	nd->timer_at = -1;
	s->crashes++;
}

/*
 * sim_node_restart starts the node's process: the log tracker is rebuilt
 * from the durable state (decided rounds, apply cursor), as the extension
 * rebuilds it from its tables.
 */
void
sim_node_restart(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];
	int64_t r;

	nd->up = true;
	nd->inc++;
	if (px_log_init(&nd->log, nd->log_bits, sizeof(nd->log_bits), 0) !=
		PX_LOG_OK)
		sim_fail(s, "px_log_init failed");
	for (r = 0; r < SIM_MAX_ROUNDS; r++)
	{
		if (nd->acc_used[r] && nd->acc[r].decided &&
			px_log_learn(&nd->log, r) < 0)
			sim_fail(s, "%s: px_log_learn(%lld) failed", nd->name,
					 (long long) r);
	}
	px_log_note_round(&nd->log, nd->acc_max_round);
	for (r = 0; r < nd->applied_next; r++)
	{
		if (px_log_mark_applied(&nd->log, r) != PX_LOG_OK)
			sim_fail(s, "%s: applied round %lld is not decided", nd->name,
					 (long long) r);
	}
	nd->pstate = SIM_IDLE;
	nd->round = -1;
	nd->noop = false;
	nd->conflicts = 0;
	nd->reported_max = -1;
	nd->timer_at = s->now;
	nd->sync_at = s->now + sim_rand_range(&s->rng, 0, SIM_SYNC_PERIOD);
	nd->gap_round = -1;
	nd->gap_since = 0;
	nd->hold = false;
	nd->held = false;
	nd->grants = 0;
	if (nd->inc > 1)
		sim_trace(s, "%s restarts (incarnation %u)", nd->name, nd->inc);
}

/* sim_client_done: the client has nothing left to append. */
bool
sim_client_done(const sim_node *nd)
{
	return nd->next_value >= nd->n_values;
}

/* round_ok: rounds are bounded by the fixture's storage. */
static bool
round_ok(sim *s, int64_t round)
{
	if (round >= 0 && round < SIM_MAX_ROUNDS)
		return true;
	sim_fail(s, "round %lld outside the simulated log", (long long) round);
	return false;
}

/* acc_load reads a round's durable state (a fresh one if never used). */
static px_acceptor_state
acc_load(const sim_node *nd, int64_t round)
{
	px_acceptor_state st;

	if (nd->acc_used[round])
		return nd->acc[round];
	px_acceptor_init(&st);
	return st;
}

/*
 * acc_store makes a round's state durable.  Value strings are borrowed
 * from the request, so they are copied into fixture-owned storage here,
 * exactly where the extension would write them to its table.
 */
static void
acc_store(sim *s, sim_node *nd, int64_t round, const px_acceptor_state *st)
{
	px_acceptor_state *d = &nd->acc[round];

	*d = *st;
	d->value.id = sim_intern(s, st->value.id);
	d->value.data = sim_intern(s, st->value.data);
	nd->acc_used[round] = true;
	nd->verified[round] = false;
	if ((d->has_accepted || d->decided) && round > nd->acc_max_round)
		nd->acc_max_round = round;
	if (d->has_accepted || d->decided)
		px_log_note_round(&nd->log, round);
	if (round > s->max_round_used)
		s->max_round_used = round;
}

/* --- acceptor ---------------------------------------------------------- */

/* on_prepare (phase 1b): decide, persist, then answer. */
static void
on_prepare(sim *s, sim_node *nd, const sim_msg *m)
{
	px_acceptor_state st = acc_load(nd, m->round);
	px_promise out;
	sim_msg *r;
	bool granted = false;

	px_standing_apply(&nd->standing, m->round, &st);
	if (px_acceptor_prepare(&st, &m->u.req.ballot, &out))
		acc_store(s, nd, m->round, &st);
	/* nd->standing is durable state: granting persists it */
	if (m->standing && out.promised)
		granted = px_standing_grant(&nd->standing, m->round, &m->u.req.ballot);
	out.max_round = nd->acc_max_round;
	/* out's strings point into st, a copy of durable (interned) state */
	r = sim_msg_new(s, SIM_PROMISE, nd->idx, m->from);
	if (r == NULL)
		return;
	r->to_inc = m->from_inc;
	r->round = m->round;
	r->u.promise = out;
	r->standing = granted && nd->acc_max_round <= m->round;
	sim_send(s, r);
}

/*
 * on_accept (phase 2b): decide, persist, tell the oracle about a real
 * acceptance, then answer.
 */
static void
on_accept(sim *s, sim_node *nd, const sim_msg *m)
{
	px_acceptor_state st = acc_load(nd, m->round);
	px_accepted out;
	sim_msg *r;

	px_standing_apply(&nd->standing, m->round, &st);
	if (px_acceptor_accept(&st, &m->u.req.ballot, m->u.req.value, &out))
		acc_store(s, nd, m->round, &st);
	if (out.accepted && !out.decided)
		sim_oracle_accepted(s, nd->idx, m->round, &nd->acc[m->round].accepted,
							nd->acc[m->round].value);
	r = sim_msg_new(s, SIM_ACCEPTED, nd->idx, m->from);
	if (r == NULL)
		return;
	r->to_inc = m->from_inc;
	r->round = m->round;
	r->u.accepted = out;
	sim_send(s, r);
}

/* --- learner ----------------------------------------------------------- */

/*
 * local_learn (learn): decide the round locally.  A conflicting value is
 * the anomaly the whole protocol exists to prevent.
 */
static void
local_learn(sim *s, sim_node *nd, int64_t round, const px_ballot *b,
			px_value v)
{
	px_acceptor_state st = acc_load(nd, round);

	if (st.decided && !px_value_equal(st.value, v))
	{
		sim_fail(s, "%s: round %lld decided as %s/%s, then told %s/%s",
				 nd->name, (long long) round, st.value.id,
				 st.value.data ? st.value.data : "(noop)", v.id,
				 v.data ? v.data : "(noop)");
		return;
	}
	if (px_acceptor_learn(&st, b, v))
	{
		acc_store(s, nd, round, &st);
		learned(s, nd, round);
	}
}

/*
 * learned: record the round in the log tracker, apply what became
 * applicable (strictly in order), and end the proposer's attempt if it was
 * about this round.
 */
static void
learned(sim *s, sim_node *nd, int64_t round)
{
	int64_t a;

	if (px_log_learn(&nd->log, round) < 0)
		sim_fail(s, "%s: px_log_learn(%lld) refused", nd->name,
				 (long long) round);
	while ((a = px_log_next_to_apply(&nd->log)) >= 0)
	{
		if (a != nd->applied_next ||
			px_log_mark_applied(&nd->log, a) != PX_LOG_OK)
		{
			sim_fail(s, "%s: apply cursor out of step at %lld", nd->name,
					 (long long) a);
			return;
		}
		nd->applied_next++; /* durable: "round a is applied" */
	}
	if (nd->pstate != SIM_IDLE && nd->round == round)
		resolve(s, nd);
}

/*
 * on_sync answers a catch-up request: every decided round from the
 * requester's first hole on (as learn messages), then this node's max
 * round, so that the requester knows how far the log reaches.
 */
static void
on_sync(sim *s, sim_node *nd, const sim_msg *m)
{
	int64_t r;
	int sent = 0;
	sim_msg *out;

	for (r = m->u.sync.from_round;
		 r >= 0 && r <= nd->acc_max_round && sent < 32; r++)
	{
		if (!nd->acc_used[r] || !nd->acc[r].decided)
			continue;
		out = sim_msg_new(s, SIM_LEARN, nd->idx, m->from);
		if (out == NULL)
			return;
		out->round = r;
		out->u.req.ballot = nd->acc[r].accepted;
		out->u.req.value = nd->acc[r].value;
		sim_send(s, out);
		sent++;
	}
	out = sim_msg_new(s, SIM_SYNC_REPLY, nd->idx, m->from);
	if (out == NULL)
		return;
	out->to_inc = m->from_inc;
	out->u.sync.from_round = m->u.sync.from_round;
	out->u.sync.max_round = nd->acc_max_round;
	sim_send(s, out);
}

/* sim_node_sync sends a catch-up request to every peer. */
void
sim_node_sync(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];
	int i;

	for (i = 0; i < s->n; i++)
	{
		sim_msg *m;

		if (i == idx)
			continue;
		m = sim_msg_new(s, SIM_SYNC, idx, i);
		if (m == NULL)
			break;
		m->u.sync.from_round = nd->log.learn_next;
		m->u.sync.max_round = nd->acc_max_round;
		sim_send(s, m);
	}
	nd->sync_at = s->now + sim_rand_range(&s->rng, SIM_SYNC_PERIOD / 2,
										  SIM_SYNC_PERIOD * 3 / 2);
}

/* --- proposer ---------------------------------------------------------- */

/* send_requests sends phase 1a or 2a of the current attempt to all. */
static void
send_requests(sim *s, sim_node *nd, sim_msg_type type)
{
	int i;

	for (i = 0; i < s->n; i++)
	{
		sim_msg *m = sim_msg_new(s, type, nd->idx, i);

		if (m == NULL)
			return;
		m->round = nd->round;
		m->u.req.ballot = nd->p.ballot;
		m->u.req.value = nd->p.proposal;
		m->standing = type == SIM_PREPARE && s->cfg.standing && !nd->noop;
		sim_send(s, m);
	}
}

/*
 * start_attempt begins single-decree Paxos for (round, v): phase 1a with
 * ballot number 0, raised by retries as the acceptors' answers demand.
 */
static void
start_attempt(sim *s, sim_node *nd, int64_t round, px_value v, bool noop)
{
	bool held = s->cfg.standing && !noop && nd->hold && round >= nd->hold_from;

	if (!round_ok(s, round))
		return;
	if (px_proposer_start(&nd->p, s->n, nd->name,
						  held ? nd->hold_ballot.number : 0, v) != 0)
	{
		sim_fail(s, "px_proposer_start failed");
		return;
	}
	sim_trace(s, "%s proposes %s in round %lld%s", nd->name,
			  noop ? "a noop" : v.data, (long long) round,
			  held ? " (standing promise)" : "");
	nd->round = round;
	nd->noop = noop;
	nd->conflicts = 0;
	nd->held = held;
	nd->grants = 0;
	nd->timer_at = s->now + SIM_TIMEOUT;
	if (noop)
		s->noops++;
	if (held)
	{
		/* a majority promised this ballot for every round from hold_from */
		s->held_rounds++;
		px_proposer_begin_accept(&nd->p);
		nd->pstate = SIM_PHASE2;
		send_requests(s, nd, SIM_ACCEPT);
		return;
	}
	nd->pstate = SIM_PHASE1;
	send_requests(s, nd, SIM_PREPARE);
}

/*
 * keep_standing: after an attempt chose a value under its own ballot, the
 * proposer keeps (or now has) a standing promise if it skipped phase 1
 * with one, or a majority granted one in this attempt's phase 1.
 */
static void
keep_standing(sim *s, sim_node *nd)
{
	int granted = __builtin_popcountll(nd->grants);

	if (!s->cfg.standing || nd->noop)
		return;
	if (px_ballot_cmp(&nd->p.chosen_ballot, &nd->p.ballot) != 0)
	{
		nd->hold = false; /* the round went to another ballot */
		return;
	}
	if (!nd->held && granted >= s->quorum)
	{
		nd->hold = true;
		nd->hold_ballot = nd->p.ballot;
		nd->hold_from = nd->round + 1;
	}
	nd->hold_next = nd->round + 1;
}

/*
 * backoff waits a random time, growing with consecutive conflicts, before
 * retrying the same round with a higher ballot.
 */
static void
backoff(sim *s, sim_node *nd)
{
	int64_t wait;

	nd->hold = false; /* preempted or cut off: phase 1 again */
	nd->conflicts++;
	wait = px_backoff_us(nd->conflicts, sim_rand(&s->rng), SIM_BACKOFF_BASE,
						 SIM_BACKOFF_MAX);
	nd->pstate = SIM_BACKOFF;
	nd->timer_at = s->now + 1 + wait;
}

/*
 * on_chosen (learn): tell every node, ourselves included, that (ballot,
 * value) is chosen.  Learning it locally ends the attempt (resolve).
 */
static void
on_chosen(sim *s, sim_node *nd)
{
	px_ballot b = nd->p.chosen_ballot;
	px_value v = nd->p.proposal;
	int i;

	keep_standing(s, nd);
	for (i = 0; i < s->n; i++)
	{
		sim_msg *m;

		if (i == nd->idx)
			continue;
		m = sim_msg_new(s, SIM_LEARN, nd->idx, i);
		if (m == NULL)
			break;
		m->round = nd->round;
		m->u.req.ballot = b;
		m->u.req.value = v;
		sim_send(s, m);
	}
	local_learn(s, nd, nd->round, &b, v);
	if (nd->pstate != SIM_IDLE)
		resolve(s, nd);
}

/*
 * resolve ends the attempt once its round is decided here: the client's
 * value is acknowledged if it is what was chosen; otherwise the loop goes
 * on to the next round with the same value.
 */
static void
resolve(sim *s, sim_node *nd)
{
	const px_acceptor_state *st = &nd->acc[nd->round];

	if (!nd->noop && px_value_equal(st->value, nd->values[nd->next_value]))
	{
		sim_trace(s, "%s: %s chosen in round %lld", nd->name, st->value.data,
				  (long long) nd->round);
		nd->acked_round[nd->next_value] = nd->round;
		nd->next_value++;
		s->chosen_values++;
	}
	/* never a second value under the held ballot in a round it was sent to */
	if (nd->hold && nd->hold_next <= nd->round)
		nd->hold_next = nd->round + 1;
	nd->pstate = SIM_IDLE;
	nd->conflicts = 0;
	nd->timer_at = s->now;
}

/* on_status acts on what the proposer concluded from an answer. */
static void
on_status(sim *s, sim_node *nd, px_status st)
{
	switch (st)
	{
		case PX_WAIT:
			break;
		case PX_PROMISED:
			if (nd->pstate == SIM_PHASE1)
			{
				px_proposer_begin_accept(&nd->p);
				nd->pstate = SIM_PHASE2;
				nd->timer_at = s->now + SIM_TIMEOUT;
				send_requests(s, nd, SIM_ACCEPT);
			}
			break;
		case PX_CHOSEN:
			on_chosen(s, nd);
			break;
		case PX_PREEMPTED:
			s->preemptions++;
			backoff(s, nd);
			break;
	}
}

/* --- events ------------------------------------------------------------ */

/*
 * sim_node_deliver hands a message to its node.  Requests are served by
 * whatever process runs now; answers only by the process that asked.
 */
void
sim_node_deliver(sim *s, const sim_msg *m)
{
	sim_node *nd = &s->nodes[m->to];
	bool answer = m->type == SIM_PROMISE || m->type == SIM_ACCEPTED ||
				  m->type == SIM_SYNC_REPLY;
	bool attempt = nd->pstate == SIM_PHASE1 || nd->pstate == SIM_PHASE2;

	if (!nd->up || (m->from != m->to && sim_link_cut(s, m->from, m->to)))
		return;
	if (answer && m->to_inc != nd->inc)
		return;
	if (m->type != SIM_SYNC && m->type != SIM_SYNC_REPLY &&
		!round_ok(s, m->round))
		return;

	switch (m->type)
	{
		case SIM_PREPARE:
			on_prepare(s, nd, m);
			break;
		case SIM_ACCEPT:
			on_accept(s, nd, m);
			break;
		case SIM_LEARN:
			local_learn(s, nd, m->round, &m->u.req.ballot, m->u.req.value);
			break;
		case SIM_SYNC:
			on_sync(s, nd, m);
			break;
		case SIM_PROMISE:
			px_log_note_round(&nd->log, m->u.promise.max_round);
			if (m->u.promise.max_round > nd->reported_max)
				nd->reported_max = m->u.promise.max_round;
			if (attempt && m->round == nd->round && m->standing &&
				m->u.promise.promised &&
				px_ballot_cmp(&m->u.promise.promised_ballot, &nd->p.ballot) == 0)
				nd->grants |= UINT64_C(1) << m->from;
			if (attempt && m->round == nd->round)
				on_status(
					s, nd,
					px_proposer_on_promise(&nd->p, m->from, &m->u.promise));
			break;
		case SIM_ACCEPTED:
			if (attempt && m->round == nd->round)
				on_status(
					s, nd,
					px_proposer_on_accepted(&nd->p, m->from, &m->u.accepted));
			break;
		case SIM_SYNC_REPLY:
			px_log_note_round(&nd->log, m->u.sync.max_round);
			if (m->u.sync.max_round > nd->reported_max)
				nd->reported_max = m->u.sync.max_round;
			break;
	}
	sim_node_kick(s, nd->idx);
}

/*
 * sim_node_timer fires the proposer's timer: a phase that timed out backs
 * off; a backoff that ended retries the same round higher (phase 1a); an
 * idle node looks for work.
 */
void
sim_node_timer(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];

	nd->timer_at = -1;
	switch (nd->pstate)
	{
		case SIM_PHASE1:
		case SIM_PHASE2:
			sim_trace(s, "%s: round %lld timed out", nd->name,
					  (long long) nd->round);
			s->timeouts++;
			backoff(s, nd);
			break;
		case SIM_BACKOFF:
			px_proposer_retry(&nd->p);
			nd->grants = 0; /* granted to the old ballot */
			nd->pstate = SIM_PHASE1;
			nd->timer_at = s->now + SIM_TIMEOUT;
			send_requests(s, nd, SIM_PREPARE);
			break;
		case SIM_IDLE:
			break;
	}
	sim_node_kick(s, idx);
}

/*
 * sim_node_kick gives an idle node its next piece of work: first a hole
 * of the log that no learn filled for SIM_GAP_DELAY (a no-op proposal
 * learns it), else the client's next value at the next append round.
 * Otherwise the timer is set for when either becomes due.
 */
void
sim_node_kick(sim *s, int idx)
{
	sim_node *nd = &s->nodes[idx];
	int64_t gap;
	int64_t due = -1;

	if (!nd->up || nd->pstate != SIM_IDLE)
		return;

	gap = px_log_next_noop_round(&nd->log, 0);
	if (gap >= 0)
	{
		if (gap != nd->gap_round)
		{
			nd->gap_round = gap;
			nd->gap_since = s->now;
		}
		if (s->now >= nd->gap_since + SIM_GAP_DELAY)
		{
			px_value noop;

			noop.id = sim_intern(s, nd->name);
			noop.data = NULL;
			start_attempt(s, nd, gap, noop, true);
			return;
		}
		due = nd->gap_since + SIM_GAP_DELAY;
	}
	else
		nd->gap_round = -1;

	if (!sim_client_done(nd))
	{
		int64_t at = nd->avail_at[nd->next_value];

		if (at <= s->now)
		{
			/*
			 * Under a standing promise the next append goes to the round
			 * after the last one, as the extension's batcher does, even if
			 * later rounds were reported since: only the acceptors' check
			 * at the grant (nothing accepted above it) makes that safe.
			 */
			start_attempt(s, nd,
						  s->cfg.standing && nd->hold ? nd->hold_next
						  : px_log_next_append_round(&nd->log, nd->reported_max),
						  nd->values[nd->next_value], false);
			return;
		}
		if (due < 0 || at < due)
			due = at;
	}
	nd->timer_at = due;
}
