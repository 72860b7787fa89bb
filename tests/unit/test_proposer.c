/*
 * test_proposer.c
 *    Unit tests of the proposer's state machine (core/proposer.c) and of
 *    the append-round and backoff helpers, written as timelines: which
 *    answers arrive, in what order, and what the proposer concludes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "px_test.h"

/* --- phase 1b answers ------------------------------------------------- */

/* promised: host promised b and had accepted nothing. */
static px_promise
promised(px_ballot b)
{
	px_promise r;

	memset(&r, 0, sizeof(r));
	r.promised = true;
	r.promised_ballot = b;
	r.accepted.number = -1;
	r.max_round = -1;
	return r;
}

/* promised_with: host promised b and had accepted (acc, v). */
static px_promise
promised_with(px_ballot b, px_ballot acc, px_value v)
{
	px_promise r = promised(b);

	r.has_accepted = true;
	r.accepted = acc;
	r.value = v;
	return r;
}

/* refused: host had promised `higher`. */
static px_promise
refused(px_ballot higher)
{
	px_promise r = promised(higher);

	r.promised = false;
	return r;
}

/* decided_promise: host knows (acc, v) chosen. */
static px_promise
decided_promise(px_ballot acc, px_value v)
{
	px_promise r = promised_with(acc, acc, v);

	r.promised = false;
	r.decided = true;
	return r;
}

/* --- phase 2b answers ------------------------------------------------- */

static px_accepted
accepted(px_ballot b)
{
	px_accepted r;

	memset(&r, 0, sizeof(r));
	r.accepted = true;
	r.promised_ballot = b;
	return r;
}

static px_accepted
not_accepted(px_ballot higher)
{
	px_accepted r = accepted(higher);

	r.accepted = false;
	return r;
}

static px_accepted
decided_accepted(px_ballot chosen, px_value v)
{
	px_accepted r = not_accepted(chosen);

	r.decided = true;
	r.chosen_ballot = chosen;
	r.value = v;
	return r;
}

/* start: proposer "n1" with ballot (number, n1) among n hosts, value x. */
static void
start(px_proposer *p, int n, int64_t number)
{
	assert_int_equal(px_proposer_start(p, n, "n1", number, V("n1", "x")), 0);
}

static void
test_start_refuses_bad_arguments(void **state)
{
	px_proposer p;
	char id[PX_PROPOSER_ID_MAX + 1];

	(void) state;
	memset(id, 'a', sizeof(id));
	id[PX_PROPOSER_ID_MAX] = '\0';
	assert_int_equal(px_proposer_start(&p, 0, "n1", 0, V("n1", "x")), -1);
	assert_int_equal(
		px_proposer_start(&p, PX_MAX_HOSTS + 1, "n1", 0, V("n1", "x")), -1);
	assert_int_equal(px_proposer_start(&p, 3, id, 0, V("n1", "x")), -1);
	assert_int_equal(px_proposer_start(&p, 3, "n1", -1, V("n1", "x")), -1);
	assert_int_equal(
		px_proposer_start(&p, PX_MAX_HOSTS, "n1", 0, V("n1", "x")), 0);
}

/* The quorum is a strict majority: 1->1, 2->2, 3->2, 4->3, 5->3. */
static void
test_quorum_is_strict_majority(void **state)
{
	px_proposer p;
	int expect[] = {0, 1, 2, 2, 3, 3};
	int n;

	(void) state;
	for (n = 1; n <= 5; n++)
	{
		start(&p, n, 0);
		assert_int_equal(p.quorum, expect[n]);
	}
}

/* 3 hosts: two empty promises -> PROMISED with our own value. */
static void
test_quorum_of_empty_promises_proposes_own(void **state)
{
	px_proposer p;
	px_promise r = promised(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_on_promise(&p, 0, &r), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 2, &r), PX_PROMISED);
	assert_value(p.proposal, "n1", "x");
	assert_false(p.adopted);
}

/* Promises report (3,n2)=y and (4,n3)=z: phase 2a must propose z. */
static void
test_adopts_value_of_highest_accepted_ballot(void **state)
{
	px_proposer p;
	px_promise r3 = promised_with(B(5, "n1"), B(3, "n2"), V("n2", "y"));
	px_promise r4 = promised_with(B(5, "n1"), B(4, "n3"), V("n3", "z"));
	px_promise r0 = promised(B(5, "n1"));

	(void) state;
	start(&p, 5, 5);
	assert_int_equal(px_proposer_on_promise(&p, 1, &r4), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 2, &r3), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 3, &r0), PX_PROMISED);
	assert_true(p.adopted);
	assert_ballot(p.adopted_ballot, 4, "n3");
	assert_value(p.proposal, "n3", "z");
	assert_true(px_proposer_value_changed(&p));
}

/* A quorum of promises report the same accepted ballot: already chosen. */
static void
test_quorum_reporting_same_ballot_is_chosen(void **state)
{
	px_proposer p;
	px_promise r = promised_with(B(5, "n1"), B(3, "n2"), V("n2", "y"));

	(void) state;
	start(&p, 3, 5);
	assert_int_equal(px_proposer_on_promise(&p, 0, &r), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 1, &r), PX_CHOSEN);
	assert_value(p.proposal, "n2", "y");
	assert_ballot(p.chosen_ballot, 3, "n2");
}

/* A decided answer, even a refusal, ends phase 1 with its value. */
static void
test_decided_promise_is_chosen_at_once(void **state)
{
	px_proposer p;
	px_promise d = decided_promise(B(2, "n3"), V("n3", "z"));
	px_promise r = promised(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_on_promise(&p, 2, &d), PX_CHOSEN);
	assert_value(p.proposal, "n3", "z");
	assert_ballot(p.chosen_ballot, 2, "n3");
	assert_true(px_proposer_value_changed(&p));
	/* the attempt is over: later answers change nothing */
	assert_int_equal(px_proposer_on_promise(&p, 0, &r), PX_CHOSEN);
	assert_value(p.proposal, "n3", "z");
}

/* The same host answering twice counts once. */
static void
test_duplicate_promise_counts_once(void **state)
{
	px_proposer p;
	px_promise r = promised(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_on_promise(&p, 0, &r), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 0, &r), PX_WAIT);
	assert_int_equal(p.acks, 1);
}

/* A late promise of our previous ballot is not a promise of this one. */
static void
test_stale_promise_of_old_ballot_is_ignored(void **state)
{
	px_proposer p;
	px_promise old = promised(B(1, "n1"));
	px_promise stale_refusal = refused(B(0, "n2"));

	(void) state;
	start(&p, 3, 1);
	px_proposer_retry(&p); /* now (2, n1) */
	assert_int_equal(px_proposer_on_promise(&p, 0, &old), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 1, &stale_refusal), PX_WAIT);
	assert_int_equal(p.acks, 0);
	assert_int_equal(p.nacks, 0);
	assert_int_equal(p.responded, 0);
}

/* 3 hosts: two refusals leave one host, less than a quorum: PREEMPTED. */
static void
test_preempted_when_quorum_out_of_reach(void **state)
{
	px_proposer p;
	px_promise no = refused(B(9, "n2"));
	px_promise yes = promised(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_on_promise(&p, 0, &yes), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 1, &no), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 2, &no), PX_PREEMPTED);
}

/* 5 hosts: PREEMPTED at the third refusal, not before. */
static void
test_preempted_needs_n_minus_quorum_plus_one_refusals(void **state)
{
	px_proposer p;
	px_promise no = refused(B(9, "n2"));

	(void) state;
	start(&p, 5, 1);
	assert_int_equal(px_proposer_on_promise(&p, 0, &no), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 1, &no), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, 2, &no), PX_PREEMPTED);
}

/* Retry goes above every number seen and keeps the proposer's value. */
static void
test_retry_picks_number_above_all_seen(void **state)
{
	px_proposer p;
	px_promise no = refused(B(17, "n3"));
	px_promise yes = promised_with(B(1, "n1"), B(12, "n2"), V("n2", "y"));

	(void) state;
	start(&p, 3, 1);
	(void) px_proposer_on_promise(&p, 0, &yes);
	(void) px_proposer_on_promise(&p, 1, &no);
	assert_int_equal(px_proposer_on_promise(&p, 2, &no), PX_PREEMPTED);
	px_proposer_retry(&p);
	assert_ballot(p.ballot, 18, "n1");
	assert_value(p.proposal, "n1", "x");
	assert_false(p.adopted);
	assert_int_equal(p.acks + p.nacks, 0);
}

/* Phase 2: a quorum of acceptances of our ballot is chosen. */
static void
test_phase2_quorum_accepted_is_chosen(void **state)
{
	px_proposer p;
	px_promise yes = promised(B(1, "n1"));
	px_accepted ok = accepted(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	(void) px_proposer_on_promise(&p, 0, &yes);
	assert_int_equal(px_proposer_on_promise(&p, 1, &yes), PX_PROMISED);
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_on_accepted(&p, 2, &ok), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, 2, &ok), PX_WAIT); /* dup */
	assert_int_equal(px_proposer_on_accepted(&p, 0, &ok), PX_CHOSEN);
	assert_value(p.proposal, "n1", "x");
	assert_ballot(p.chosen_ballot, 1, "n1");
	assert_false(px_proposer_value_changed(&p));
}

/* Phase 2 refused by a majority: PREEMPTED; a stale refusal does not count. */
static void
test_phase2_preempted(void **state)
{
	px_proposer p;
	px_accepted no = not_accepted(B(4, "n2"));
	px_accepted stale = not_accepted(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_on_accepted(&p, 0, &stale), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, 0, &no), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, 1, &no), PX_PREEMPTED);
	px_proposer_retry(&p);
	assert_ballot(p.ballot, 5, "n1");
}

/* Phase 2 answered by a decided round: its value is chosen. */
static void
test_phase2_decided_answer_is_chosen(void **state)
{
	px_proposer p;
	px_accepted d = decided_accepted(B(3, "n2"), V("n2", "y"));

	(void) state;
	start(&p, 3, 1);
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_on_accepted(&p, 1, &d), PX_CHOSEN);
	assert_value(p.proposal, "n2", "y");
	assert_ballot(p.chosen_ballot, 3, "n2");
	assert_true(px_proposer_value_changed(&p));
}

/* After the quorum, a late promise of a higher ballot changes nothing. */
static void
test_proposal_frozen_after_quorum(void **state)
{
	px_proposer p;
	px_promise yes = promised(B(5, "n1"));
	px_promise late = promised_with(B(5, "n1"), B(4, "n3"), V("n3", "z"));

	(void) state;
	start(&p, 3, 5);
	(void) px_proposer_on_promise(&p, 0, &yes);
	assert_int_equal(px_proposer_on_promise(&p, 1, &yes), PX_PROMISED);
	assert_int_equal(px_proposer_on_promise(&p, 2, &late), PX_PROMISED);
	assert_value(p.proposal, "n1", "x");
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_on_promise(&p, 2, &late), PX_WAIT);
	assert_value(p.proposal, "n1", "x");
}

/* Answers from hosts we did not address are ignored. */
static void
test_unknown_host_is_ignored(void **state)
{
	px_proposer p;
	px_promise yes = promised(B(1, "n1"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_on_promise(&p, 3, &yes), PX_WAIT);
	assert_int_equal(px_proposer_on_promise(&p, -1, &yes), PX_WAIT);
	assert_int_equal(p.acks, 0);
}

/* A leader skips phase 1: start, then accept right away. */
static void
test_leader_skips_phase1(void **state)
{
	px_proposer p;
	px_accepted ok = accepted(B(8, "n1"));

	(void) state;
	start(&p, 5, 8);
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_on_accepted(&p, 0, &ok), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, 3, &ok), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, 4, &ok), PX_CHOSEN);
}

/* The status can be asked without feeding an answer. */
static void
test_status_without_answer(void **state)
{
	px_proposer p;
	px_promise yes = promised(B(1, "n1"));
	px_promise no = refused(B(4, "n2"));

	(void) state;
	start(&p, 3, 1);
	assert_int_equal(px_proposer_status(&p), PX_WAIT);
	(void) px_proposer_on_promise(&p, 0, &yes);
	(void) px_proposer_on_promise(&p, 1, &yes);
	assert_int_equal(px_proposer_status(&p), PX_PROMISED);
	assert_int_equal(px_proposer_on_promise(&p, -1, NULL), PX_PROMISED);

	start(&p, 3, 1);
	(void) px_proposer_on_promise(&p, 0, &no);
	(void) px_proposer_on_promise(&p, 1, &no);
	assert_int_equal(px_proposer_status(&p), PX_PREEMPTED);
	px_proposer_begin_accept(&p);
	assert_int_equal(px_proposer_status(&p), PX_WAIT);
	assert_int_equal(px_proposer_on_accepted(&p, -1, NULL), PX_WAIT);
}

/* Answers report rounds: the proposer keeps the highest. */
static void
test_max_round_is_tracked(void **state)
{
	px_proposer p;
	px_promise a = promised(B(1, "n1"));
	px_promise b = refused(B(3, "n2"));

	(void) state;
	start(&p, 3, 1);
	a.max_round = 7;
	b.max_round = 12;
	(void) px_proposer_on_promise(&p, 0, &a);
	(void) px_proposer_on_promise(&p, 1, &b);
	assert_int_equal(p.max_round, 12);
}

/*
 * Duelling proposers over three real acceptors: n1 gets x accepted by one
 * acceptor only, n2 then prepares a higher ballot on a quorum that includes
 * it and must carry x, not its own value.
 */
static void
test_minority_acceptance_survives_higher_ballot(void **state)
{
	px_acceptor_state acc[3];
	px_proposer p1;
	px_proposer p2;
	px_promise pr;
	px_accepted ar;
	px_status s = PX_WAIT;
	int i;

	(void) state;
	for (i = 0; i < 3; i++)
		px_acceptor_init(&acc[i]);

	/* n1: phase 1 on acceptors 0 and 1; accept reaches acceptor 0 only */
	assert_int_equal(px_proposer_start(&p1, 3, "n1", 1, V("n1", "x")), 0);
	for (i = 0; i < 2; i++)
	{
		(void) px_acceptor_prepare(&acc[i], &p1.ballot, &pr);
		s = px_proposer_on_promise(&p1, i, &pr);
	}
	assert_int_equal(s, PX_PROMISED);
	px_proposer_begin_accept(&p1);
	(void) px_acceptor_accept(&acc[0], &p1.ballot, p1.proposal, &ar);
	assert_int_equal(px_proposer_on_accepted(&p1, 0, &ar), PX_WAIT);

	/* n2: phase 1 on acceptors 0 and 2 with (1, n2) > (1, n1) */
	assert_int_equal(px_proposer_start(&p2, 3, "n2", 1, V("n2", "y")), 0);
	(void) px_acceptor_prepare(&acc[2], &p2.ballot, &pr);
	assert_int_equal(px_proposer_on_promise(&p2, 2, &pr), PX_WAIT);
	(void) px_acceptor_prepare(&acc[0], &p2.ballot, &pr);
	assert_int_equal(px_proposer_on_promise(&p2, 0, &pr), PX_PROMISED);
	assert_value(p2.proposal, "n1", "x");

	/* n1's late accept on acceptor 1 is still fine: same value */
	(void) px_acceptor_accept(&acc[1], &p1.ballot, p1.proposal, &ar);
	assert_int_equal(px_proposer_on_accepted(&p1, 1, &ar), PX_CHOSEN);

	/* n2 completes phase 2 with x: both agree */
	px_proposer_begin_accept(&p2);
	for (i = 0; i < 3 && s != PX_CHOSEN; i++)
	{
		(void) px_acceptor_accept(&acc[i], &p2.ballot, p2.proposal, &ar);
		s = px_proposer_on_accepted(&p2, i, &ar);
	}
	assert_int_equal(s, PX_CHOSEN);
	assert_true(px_value_equal(p1.proposal, p2.proposal));
	assert_true(px_proposer_value_changed(&p2));
	assert_false(px_proposer_value_changed(&p1));
}

/* --- Multi-Paxos helpers ---------------------------------------------- */

static void
test_next_append_round(void **state)
{
	(void) state;
	assert_int_equal(px_next_append_round(-1, -1), 0);
	assert_int_equal(px_next_append_round(4, -1), 5);
	assert_int_equal(px_next_append_round(4, 9), 10);
	assert_int_equal(px_next_append_round(12, 9), 13);
}

/* Backoff stays in [0, min(max, base << conflicts)). */
static void
test_backoff_range_doubles_up_to_max(void **state)
{
	uint64_t r;

	(void) state;
	assert_int_equal(px_backoff_us(0, 999, 100, 10000), 99);
	assert_int_equal(px_backoff_us(1, 199, 100, 10000), 199);
	assert_int_equal(px_backoff_us(1, 200, 100, 10000), 0);
	assert_int_equal(px_backoff_us(3, 799, 100, 10000), 799);
	assert_int_equal(px_backoff_us(30, 10000, 100, 10000), 0);
	assert_int_equal(px_backoff_us(30, 9999, 100, 10000), 9999);
	assert_int_equal(px_backoff_us(1000, UINT64_MAX, 100, 10000),
					 (int64_t) (UINT64_MAX % 10000));
	assert_int_equal(px_backoff_us(-5, 150, 100, 10000), 50);
	assert_int_equal(px_backoff_us(3, 12345, 0, 10000), 0);
	for (r = 0; r < 100000; r += 7919)
		assert_in_range(px_backoff_us(4, r * 2654435761u, 100, 1000), 0, 999);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_refuses_bad_arguments),
		cmocka_unit_test(test_quorum_is_strict_majority),
		cmocka_unit_test(test_quorum_of_empty_promises_proposes_own),
		cmocka_unit_test(test_adopts_value_of_highest_accepted_ballot),
		cmocka_unit_test(test_quorum_reporting_same_ballot_is_chosen),
		cmocka_unit_test(test_decided_promise_is_chosen_at_once),
		cmocka_unit_test(test_duplicate_promise_counts_once),
		cmocka_unit_test(test_stale_promise_of_old_ballot_is_ignored),
		cmocka_unit_test(test_preempted_when_quorum_out_of_reach),
		cmocka_unit_test(
			test_preempted_needs_n_minus_quorum_plus_one_refusals),
		cmocka_unit_test(test_retry_picks_number_above_all_seen),
		cmocka_unit_test(test_phase2_quorum_accepted_is_chosen),
		cmocka_unit_test(test_phase2_preempted),
		cmocka_unit_test(test_phase2_decided_answer_is_chosen),
		cmocka_unit_test(test_proposal_frozen_after_quorum),
		cmocka_unit_test(test_unknown_host_is_ignored),
		cmocka_unit_test(test_leader_skips_phase1),
		cmocka_unit_test(test_status_without_answer),
		cmocka_unit_test(test_max_round_is_tracked),
		cmocka_unit_test(test_minority_acceptance_survives_higher_ballot),
		cmocka_unit_test(test_next_append_round),
		cmocka_unit_test(test_backoff_range_doubles_up_to_max),
	};

	return cmocka_run_group_tests_name("proposer", tests, NULL, NULL);
}
