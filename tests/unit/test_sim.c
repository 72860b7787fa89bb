/*
 * test_sim.c
 *    The consensus core over a simulated network (sim.h): a few scripted
 *    timelines, then thousands of random seeds of 3- and 5-node clusters
 *    with loss, duplication, reordering, partitions and crashes, checking
 *    safety after every step and liveness once the faults stop.
 *
 * Environment:
 *   PX_SEED=<n>    run only seed n (in each random test, or PX_NODES's)
 *   PX_NODES=3|5   with PX_SEED: only that cluster size
 *   PX_TRACE=1     with PX_SEED: print every event of the run
 *   PX_SEEDS=<n>   seeds per random test (default: 10000 for 3 nodes,
 *                  5000 for 5), e.g. PX_SEEDS=100000 for a soak
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

/* run_until runs every event before simulated time t (or to a failure). */
static void
run_until(sim *s, int64_t t)
{
	while (sim_next_time(s) < t && sim_step(s))
		;
	if (s->failed)
		fail_msg("seed %llu: %s", (unsigned long long) s->seed, s->failure);
}

/* expect_run_ok runs to convergence and fails the test with the reason. */
static void
expect_run_ok(sim *s)
{
	if (sim_run(s) != 0)
		fail_msg("seed %llu: %s", (unsigned long long) s->seed, s->failure);
}

/* values_chosen counts client values the oracle saw learned. */
static int
values_chosen(const sim *s)
{
	int64_t r;
	int n = 0;

	for (r = 0; r <= s->max_round_used; r++)
		n += s->oracle[r].learned && s->oracle[r].learned_value.data != NULL;
	return n;
}

/* only_node_has_values gives node idx's client all its values at t=0. */
static void
only_node_has_values(sim *s, int idx, int n_values)
{
	int i;
	int k;

	for (i = 0; i < s->n; i++)
		s->nodes[i].n_values = i == idx ? n_values : 0;
	for (k = 0; k < n_values; k++)
		s->nodes[idx].avail_at[k] = 0;
}

/* isolate cuts node idx off from the others until `until`. */
static void
isolate(sim *s, int idx, int64_t until)
{
	int i;

	for (i = 0; i < s->n; i++)
		s->side[i] = i == idx ? 0 : 1;
	s->partitioned = true;
	s->partition_end = until;
}

static int
setup(void **state)
{
	*state = malloc(sizeof(sim));
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

/* Calm network, 3 nodes appending at once: every value chosen once. */
static void
test_calm_network_chooses_every_value_once(void **state)
{
	sim *s = *state;
	sim_config cfg;
	int i;
	int total = 0;

	sim_default_config(&cfg, 3);
	sim_init(s, &cfg, 1);
	for (i = 0; i < s->n; i++)
		total += s->nodes[i].n_values;
	expect_run_ok(s);
	assert_int_equal(values_chosen(s), total);
	assert_int_equal(s->crashes, 0);
}

/*
 * Timeline: n0 is cut off from n1 and n2 for 100 ms with a value to
 * append.  It cannot get a quorum, so nothing is chosen anywhere; once the
 * partition heals its value is chosen.
 */
static void
test_minority_side_cannot_choose(void **state)
{
	sim *s = *state;
	sim_config cfg;

	sim_default_config(&cfg, 3);
	cfg.fault_end = 150000;
	sim_init(s, &cfg, 2);
	only_node_has_values(s, 0, 1);
	isolate(s, 0, 100000);

	run_until(s, 99000);
	assert_int_equal(s->max_round_used, 0); /* n0 promised itself round 0 */
	assert_false(s->oracle[0].chosen);
	assert_int_equal(s->nodes[0].acked_round[0], -1);

	expect_run_ok(s);
	assert_int_equal(s->nodes[0].acked_round[0], 0);
}

/*
 * Timeline: n0 is cut off; n1 and n2 are a majority and append all their
 * values meanwhile.  After the partition heals, n0 learns all of it.
 */
static void
test_majority_side_keeps_going_and_minority_catches_up(void **state)
{
	sim *s = *state;
	sim_config cfg;
	int k;

	sim_default_config(&cfg, 3);
	cfg.fault_end = 300000;
	sim_init(s, &cfg, 3);
	s->nodes[0].n_values = 0;
	for (k = 0; k < s->nodes[1].n_values; k++)
		s->nodes[1].avail_at[k] = 0;
	isolate(s, 0, 250000);

	run_until(s, 200000);
	assert_true(sim_client_done(&s->nodes[1]));
	assert_int_equal(s->nodes[0].log.learn_next, 0); /* learned nothing */

	expect_run_ok(s);
	assert_true(s->nodes[0].log.learn_next > s->nodes[1].acc_max_round);
}

/*
 * Timeline: n2 is down from the start while n0 and n1 append; when it
 * restarts it learns every round from its peers and applies them.
 */
static void
test_restarted_node_catches_up(void **state)
{
	sim *s = *state;
	sim_config cfg;

	sim_default_config(&cfg, 3);
	cfg.fault_end = 200000;
	sim_init(s, &cfg, 4);
	s->nodes[2].n_values = 0;
	sim_node_crash(s, 2);
	s->restart_at[2] = 150000;

	run_until(s, 140000);
	assert_false(s->nodes[2].up);
	assert_int_equal(s->nodes[2].acc_max_round, -1);

	expect_run_ok(s);
	assert_int_equal(s->nodes[2].applied_next, s->nodes[0].applied_next);
}

/*
 * Timeline: n0 crashes as soon as one acceptor accepted its value.  The
 * value is abandoned (its client never hears back): it may end up chosen
 * (another proposer's phase 1 finds it) or not, but at most once, and the
 * others' values are all chosen.
 */
static void
test_proposer_crash_mid_accept(void **state)
{
	sim *s = *state;
	sim_config cfg;
	int seed;

	sim_default_config(&cfg, 3);
	cfg.fault_end = 100000;
	for (seed = 10; seed < 40; seed++)
	{
		sim_init(s, &cfg, (uint64_t) seed);
		only_node_has_values(s, 0, 2);
		s->nodes[1].n_values = 1;
		s->nodes[1].avail_at[0] = 30000;
		while (s->oracle[0].n == 0 && sim_step(s))
			;
		sim_node_crash(s, 0); /* restarts when the faults stop */
		assert_true(s->nodes[0].abandoned[0]);
		expect_run_ok(s);
		assert_true(s->nodes[0].acked_round[1] >= 0);
		assert_true(s->nodes[1].acked_round[0] >= 0);
	}
}

/* Five proposers with all their values at once: duels resolve. */
static void
test_duelling_proposers(void **state)
{
	sim *s = *state;
	sim_config cfg;
	int i;
	int k;

	sim_default_config(&cfg, 5);
	cfg.min_values = cfg.max_values = 4;
	sim_init(s, &cfg, 5);
	for (i = 0; i < s->n; i++)
		for (k = 0; k < s->nodes[i].n_values; k++)
			s->nodes[i].avail_at[k] = 0;
	expect_run_ok(s);
	assert_int_equal(values_chosen(s), 20);
}

/* The same seed gives the same run, step for step. */
static void
test_seed_replays_exactly(void **state)
{
	sim *s = *state;
	sim_config cfg;
	uint64_t steps;
	int64_t now;
	int64_t r;
	px_value log[SIM_MAX_ROUNDS];

	sim_random_config(&cfg, 3, 77);
	sim_init(s, &cfg, 77);
	expect_run_ok(s);
	steps = s->steps;
	now = s->now;
	for (r = 0; r <= s->max_round_used; r++)
		log[r] = s->oracle[r].learned_value;

	sim_init(s, &cfg, 77);
	expect_run_ok(s);
	assert_int_equal(s->steps, steps);
	assert_int_equal(s->now, now);
	for (r = 0; r <= s->max_round_used; r++)
		assert_true(px_value_equal(log[r], s->oracle[r].learned_value));
}

/* env_u64 reads a numeric environment variable, or dflt. */
static uint64_t
env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return (v != NULL && *v != '\0') ? strtoull(v, NULL, 10) : dflt;
}

/*
 * random_seeds runs seeds [first, first + count) of an n-node cluster
 * with a fault profile drawn from each seed; the first failing seed is
 * reported with how to replay it.
 */
static void
random_seeds(sim *s, int n, uint64_t first, uint64_t count)
{
	const char *one = getenv("PX_SEED");
	bool trace = getenv("PX_TRACE") != NULL;
	uint64_t seed;
	uint64_t steps = 0;
	uint64_t chosen = 0;
	uint64_t crashes = 0;
	uint64_t partitions = 0;
	uint64_t noops = 0;
	uint64_t preemptions = 0;
	uint64_t timeouts = 0;
	uint64_t held = 0;
	uint64_t worst = 0;

	if (one != NULL && *one != '\0')
	{
		if (env_u64("PX_NODES", (uint64_t) n) != (uint64_t) n)
			skip();
		first = strtoull(one, NULL, 10);
		count = 1;
	}
	else
		count = env_u64("PX_SEEDS", count);

	for (seed = first; seed < first + count; seed++)
	{
		sim_config cfg;

		sim_random_config(&cfg, n, seed);
		sim_init(s, &cfg, seed);
		s->trace = trace && count == 1;
		if (sim_run(s) != 0)
			fail_msg("%d nodes, seed %llu: %s\n"
					 "replay: PX_SEED=%llu PX_NODES=%d [PX_TRACE=1] "
					 "tests/unit/build/test_sim",
					 n, (unsigned long long) seed, s->failure,
					 (unsigned long long) seed, n);
		steps += s->steps;
		chosen += s->chosen_values;
		crashes += s->crashes;
		partitions += s->partitions;
		noops += s->noops;
		preemptions += s->preemptions;
		timeouts += s->timeouts;
		held += s->held_rounds;
		if (s->steps - s->heal_step > worst)
			worst = s->steps - s->heal_step;
	}
	print_message(
		"%d nodes: %llu seeds from %llu: %llu steps, %llu values "
		"chosen, %llu no-ops proposed, %llu preemptions, %llu timeouts, "
		"%llu crashes, %llu partitions, %llu attempts under a standing "
		"promise; converged at most %llu steps after the faults (limit %d)\n",
		n, (unsigned long long) count, (unsigned long long) first,
		(unsigned long long) steps, (unsigned long long) chosen,
		(unsigned long long) noops, (unsigned long long) preemptions,
		(unsigned long long) timeouts, (unsigned long long) crashes,
		(unsigned long long) partitions, (unsigned long long) held,
		(unsigned long long) worst,
		SIM_LIVENESS_STEPS);
}

static void
test_random_seeds_3_nodes(void **state)
{
	random_seeds(*state, 3, 1, 10000);
}

static void
test_random_seeds_5_nodes(void **state)
{
	random_seeds(*state, 5, 1000001, 5000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calm_network_chooses_every_value_once),
		cmocka_unit_test(test_minority_side_cannot_choose),
		cmocka_unit_test(
			test_majority_side_keeps_going_and_minority_catches_up),
		cmocka_unit_test(test_restarted_node_catches_up),
		cmocka_unit_test(test_proposer_crash_mid_accept),
		cmocka_unit_test(test_duelling_proposers),
		cmocka_unit_test(test_seed_replays_exactly),
		cmocka_unit_test(test_random_seeds_3_nodes),
		cmocka_unit_test(test_random_seeds_5_nodes),
	};

	return cmocka_run_group_tests_name("simulation", tests, setup, teardown);
}
