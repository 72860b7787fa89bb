/*
 * sim_check.c
 *    The checker of the simulated cluster: an oracle that records every
 *    acceptance any acceptor ever made, and the safety and liveness
 *    properties checked against it.
 *
 * Safety (after every step):
 *   - one ballot carries one value in a round (a proposer never sends two);
 *   - at most one value is ever chosen (accepted by a majority under one
 *     ballot) in a round;
 *   - whatever a node learned (its decided state) was really accepted by a
 *     majority under the ballot it learned it with;
 *   - no two nodes learn different values for a round;
 *   - a client's value appears in at most one round of the log;
 *   - a node applies only learned rounds, in order.
 * Liveness (once faults stopped): every node is up, every client value not
 * abandoned at a crash is acknowledged, and every node has learned and
 * applied every round that any acceptor knows.
 *
 * The checker reads only the fixture's durable state and the oracle, never
 * the core's own conclusions, so a bug in the core cannot vouch for itself.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

static int popcount(uint32_t mask);
static const char *show(px_value v);
static bool chosen_under(const sim *s, int64_t round, const px_ballot *b,
						 px_value v);
static void first_learned(sim *s, int64_t round, const px_acceptor_state *st);

/* popcount counts acceptors in a mask. */
static int
popcount(uint32_t mask)
{
	int n = 0;

	for (; mask; mask &= mask - 1)
		n++;
	return n;
}

/* show names a value in a failure message. */
static const char *
show(px_value v)
{
	if (v.data != NULL)
		return v.data;
	return v.id != NULL ? "(noop)" : "(none)";
}

/*
 * sim_oracle_accepted records that node accepted (b, v) in round: the
 * acceptor's durable state says so.  This is the ground truth of "chosen".
 */
void
sim_oracle_accepted(sim *s, int node, int64_t round, const px_ballot *b,
					px_value v)
{
	sim_round_oracle *o = &s->oracle[round];
	int i;

	for (i = 0; i < o->n; i++)
	{
		if (px_ballot_cmp(&o->e[i].ballot, b) == 0)
			break;
	}
	if (i == o->n)
	{
		if (o->n == SIM_MAX_BALLOTS)
		{
			sim_fail(s, "round %lld: more than %d ballots accepted",
					 (long long) round, SIM_MAX_BALLOTS);
			return;
		}
		o->e[i].ballot = *b;
		o->e[i].value = v;
		o->e[i].mask = 0;
		o->n++;
	}
	else if (!px_value_equal(o->e[i].value, v))
	{
		sim_fail(s,
				 "round %lld: ballot (%lld,%s) accepted with %s and with %s",
				 (long long) round, (long long) b->number, b->proposer,
				 show(o->e[i].value), show(v));
		return;
	}
	o->e[i].mask |= UINT32_C(1) << node;

	if (popcount(o->e[i].mask) < s->quorum)
		return;
	if (!o->chosen)
	{
		o->chosen = true;
		o->chosen_value = v;
		sim_trace(s, "oracle: round %lld chose %s under (%lld,%s)",
				  (long long) round, show(v), (long long) b->number,
				  b->proposer);
	}
	else if (!px_value_equal(o->chosen_value, v))
		sim_fail(s,
				 "round %lld: two values chosen: %s and %s (ballot %lld,%s)",
				 (long long) round, show(o->chosen_value), show(v),
				 (long long) b->number, b->proposer);
}

/* chosen_under: did a majority accept (b, v) in round? */
static bool
chosen_under(const sim *s, int64_t round, const px_ballot *b, px_value v)
{
	const sim_round_oracle *o = &s->oracle[round];
	int i;

	for (i = 0; i < o->n; i++)
	{
		if (px_ballot_cmp(&o->e[i].ballot, b) == 0)
			return px_value_equal(o->e[i].value, v) &&
				   popcount(o->e[i].mask) >= s->quorum;
	}
	return false;
}

/*
 * first_learned: the first node to learn a round fixes the log's entry;
 * a client value must not already be the entry of another round.
 */
static void
first_learned(sim *s, int64_t round, const px_acceptor_state *st)
{
	sim_round_oracle *o = &s->oracle[round];
	int node;
	int k;

	o->learned = true;
	o->learned_value = st->value;
	if (st->value.data == NULL)
		return;
	if (sscanf(st->value.data, "n%d:%d", &node, &k) != 2 || node < 0 ||
		node >= s->n || k < 0 || k >= SIM_MAX_VALUES)
	{
		sim_fail(s, "round %lld: learned a value nobody proposed: %s",
				 (long long) round, st->value.data);
		return;
	}
	if (s->value_round[node][k] >= 0 && s->value_round[node][k] != round)
	{
		sim_fail(s, "value %s appended twice: rounds %lld and %lld",
				 st->value.data, (long long) s->value_round[node][k],
				 (long long) round);
		return;
	}
	s->value_round[node][k] = round;
}

/*
 * sim_check_safety runs after every step.  Agreement is checked on every
 * decided round of every node (values are interned, so this compares
 * pointers); the costlier majority check runs once per durable change
 * (acc_store clears the verified flag).
 */
void
sim_check_safety(sim *s)
{
	int i;
	int64_t r;

	for (i = 0; i < s->n && !s->failed; i++)
	{
		sim_node *nd = &s->nodes[i];

		for (r = 0; r <= s->max_round_used; r++)
		{
			const px_acceptor_state *st = &nd->acc[r];
			sim_round_oracle *o = &s->oracle[r];

			if (!nd->acc_used[r] || !st->decided)
				continue;
			if (!o->learned)
				first_learned(s, r, st);
			else if (st->value.id != o->learned_value.id ||
					 st->value.data != o->learned_value.data)
			{
				sim_fail(s, "round %lld: %s learned %s, another node %s",
						 (long long) r, nd->name, show(st->value),
						 show(o->learned_value));
				return;
			}
			if (!nd->verified[r])
			{
				if (!chosen_under(s, r, &st->accepted, st->value))
				{
					sim_fail(s,
							 "round %lld: %s learned %s under (%lld,%s), "
							 "which no majority accepted",
							 (long long) r, nd->name, show(st->value),
							 (long long) st->accepted.number,
							 st->accepted.proposer);
					return;
				}
				nd->verified[r] = true;
			}
		}
		if (nd->up && nd->applied_next > nd->log.learn_next)
			sim_fail(s, "%s applied up to %lld but learned only up to %lld",
					 nd->name, (long long) nd->applied_next,
					 (long long) nd->log.learn_next);
	}
}

/*
 * sim_converged: every node is up, every client is done, and every node
 * has learned and applied every round any acceptor knows of.
 */
bool
sim_converged(sim *s)
{
	int64_t max_round = -1;
	int i;

	for (i = 0; i < s->n; i++)
	{
		const sim_node *nd = &s->nodes[i];

		if (!nd->up || !sim_client_done(nd))
			return false;
		if (nd->acc_max_round > max_round)
			max_round = nd->acc_max_round;
	}
	for (i = 0; i < s->n; i++)
	{
		const sim_node *nd = &s->nodes[i];

		if (nd->log.learn_next <= max_round || nd->applied_next <= max_round)
			return false;
	}
	return true;
}

/*
 * sim_check_final, after convergence: the logs are complete and equal,
 * every acknowledged value is in the log where its client was told, every
 * value not abandoned was acknowledged.
 */
void
sim_check_final(sim *s)
{
	int64_t max_round = -1;
	int i;
	int k;
	int64_t r;

	sim_check_safety(s);
	for (i = 0; i < s->n; i++)
	{
		if (s->nodes[i].acc_max_round > max_round)
			max_round = s->nodes[i].acc_max_round;
	}
	for (r = 0; r <= max_round && !s->failed; r++)
	{
		for (i = 0; i < s->n; i++)
		{
			const sim_node *nd = &s->nodes[i];

			if (!nd->acc_used[r] || !nd->acc[r].decided)
			{
				sim_fail(s, "%s never learned round %lld", nd->name,
						 (long long) r);
				return;
			}
		}
	}
	for (i = 0; i < s->n && !s->failed; i++)
	{
		const sim_node *nd = &s->nodes[i];

		for (k = 0; k < nd->n_values; k++)
		{
			if (nd->abandoned[k])
				continue;
			if (nd->acked_round[k] < 0)
				sim_fail(s, "%s never got %s chosen", nd->name,
						 nd->values[k].data);
			else if (s->value_round[i][k] != nd->acked_round[k])
				sim_fail(
					s,
					"%s was told %s is in round %lld, the log has it in %lld",
					nd->name, nd->values[k].data,
					(long long) nd->acked_round[k],
					(long long) s->value_round[i][k]);
		}
	}
}
