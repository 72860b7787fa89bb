/*
 * test_acceptor.c
 *    Unit tests of the acceptor's decisions (core/acceptor.c): phase 1b,
 *    phase 2b and learn, one rule per test, written as timelines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "px_test.h"

/* promise sends prepare(b) to st and returns whether it was promised. */
static bool
promise(px_acceptor_state *st, px_ballot b, px_promise *out)
{
	(void) px_acceptor_prepare(st, &b, out);
	return out->promised;
}

/* accept sends accept(b, v) to st and returns whether it was accepted. */
static bool
accept(px_acceptor_state *st, px_ballot b, px_value v, px_accepted *out)
{
	(void) px_acceptor_accept(st, &b, v, out);
	return out->accepted;
}

/* A round never heard of has nothing promised or accepted. */
static void
test_fresh_round_is_empty(void **state)
{
	px_acceptor_state st;

	(void) state;
	px_acceptor_init(&st);
	assert_int_equal(st.promised.number, -1);
	assert_false(st.has_accepted);
	assert_false(st.decided);
}

/* Fresh acceptor promises the first ballot and must persist that. */
static void
test_fresh_acceptor_promises_first_ballot(void **state)
{
	px_acceptor_state st;
	px_promise out;
	px_ballot b = B(0, "n1");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_prepare(&st, &b, &out));
	assert_true(out.promised);
	assert_ballot(out.promised_ballot, 0, "n1");
	assert_false(out.has_accepted);
	assert_false(out.decided);
	assert_int_equal(out.max_round, -1); /* the caller fills it */
	assert_ballot(st.promised, 0, "n1");
}

/* Acceptor promised 5 rejects prepare 4 and reports its promise. */
static void
test_promised_5_rejects_prepare_4(void **state)
{
	px_acceptor_state st;
	px_promise out;
	px_ballot b4 = B(4, "n1");

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, B(5, "n2"), &out));
	assert_false(px_acceptor_prepare(&st, &b4, &out));
	assert_false(out.promised);
	assert_ballot(out.promised_ballot, 5, "n2");
	assert_ballot(st.promised, 5, "n2");
}

/* The rule is strict: acceptor promised 5 rejects prepare 5 again. */
static void
test_promised_5_rejects_prepare_5_again(void **state)
{
	px_acceptor_state st;
	px_promise out;

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, B(5, "n1"), &out));
	assert_false(promise(&st, B(5, "n1"), &out));
	assert_ballot(out.promised_ballot, 5, "n1");
}

/* Same number, higher id: acceptor promised (5,n1) promises (5,n2). */
static void
test_promise_orders_equal_numbers_by_id(void **state)
{
	px_acceptor_state st;
	px_promise out;

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, B(5, "n1"), &out));
	assert_true(promise(&st, B(5, "n2"), &out));
	assert_false(promise(&st, B(5, "n1"), &out));
}

/* Acceptor promised 5 rejects accept 4: the promise is the whole point. */
static void
test_promised_5_rejects_accept_4(void **state)
{
	px_acceptor_state st;
	px_accepted out;
	px_promise p;
	px_ballot b4 = B(4, "n1");

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, B(5, "n2"), &p));
	assert_false(px_acceptor_accept(&st, &b4, V("n1", "x"), &out));
	assert_false(out.accepted);
	assert_false(out.decided);
	assert_ballot(out.promised_ballot, 5, "n2");
	assert_false(st.has_accepted);
}

/* Acceptor promised 5 accepts 5 (the proposer it promised). */
static void
test_promised_5_accepts_5(void **state)
{
	px_acceptor_state st;
	px_accepted out;
	px_promise p;
	px_ballot b5 = B(5, "n1");

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, b5, &p));
	assert_true(px_acceptor_accept(&st, &b5, V("n1", "x"), &out));
	assert_true(out.accepted);
	assert_ballot(out.promised_ballot, 5, "n1");
	assert_true(st.has_accepted);
	assert_ballot(st.accepted, 5, "n1");
	assert_value(st.value, "n1", "x");
}

/* Acceptor promised 5 accepts 6 without a prepare, and now promises 6. */
static void
test_accept_above_promise_raises_promise(void **state)
{
	px_acceptor_state st;
	px_accepted out;
	px_promise p;

	(void) state;
	px_acceptor_init(&st);
	assert_true(promise(&st, B(5, "n1"), &p));
	assert_true(accept(&st, B(6, "n2"), V("n2", "y"), &out));
	assert_ballot(st.promised, 6, "n2");
	assert_false(promise(&st, B(6, "n1"), &p));
	assert_false(accept(&st, B(5, "n1"), V("n1", "x"), &out));
	assert_value(st.value, "n2", "y");
}

/* A duplicated accept is answered again but costs no write. */
static void
test_duplicate_accept_needs_no_write(void **state)
{
	px_acceptor_state st;
	px_accepted out;
	px_ballot b = B(3, "n1");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_accept(&st, &b, V("n1", "x"), &out));
	assert_false(px_acceptor_accept(&st, &b, V("n1", "x"), &out));
	assert_true(out.accepted);
}

/* Promise of a higher ballot reports what was accepted (phase 1b). */
static void
test_promise_reports_accepted_value(void **state)
{
	px_acceptor_state st;
	px_accepted acc;
	px_promise out;

	(void) state;
	px_acceptor_init(&st);
	assert_true(accept(&st, B(3, "n1"), V("n1", "x"), &acc));
	assert_true(promise(&st, B(4, "n2"), &out));
	assert_true(out.has_accepted);
	assert_ballot(out.accepted, 3, "n1");
	assert_value(out.value, "n1", "x");
	/* refusals report it too: a proposer may learn from them */
	assert_false(promise(&st, B(2, "n3"), &out));
	assert_true(out.has_accepted);
	assert_value(out.value, "n1", "x");
}

/* A request without a ballot (-1) is refused by both phases. */
static void
test_no_ballot_is_refused(void **state)
{
	px_acceptor_state st;
	px_accepted acc;
	px_promise out;

	(void) state;
	px_acceptor_init(&st);
	assert_false(promise(&st, B(-1, "n1"), &out));
	assert_false(accept(&st, B(-1, "n1"), V("n1", "x"), &acc));
	assert_false(st.has_accepted);
}

/* Learn decides the round with the chosen ballot and value. */
static void
test_learn_decides_round(void **state)
{
	px_acceptor_state st;
	px_ballot b = B(7, "n2");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_learn(&st, &b, V("n2", "y")));
	assert_true(st.decided);
	assert_ballot(st.accepted, 7, "n2");
	assert_value(st.value, "n2", "y");
	/* learning it again changes nothing: nothing to persist */
	assert_false(px_acceptor_learn(&st, &b, V("n2", "y")));
}

/* Learn of a conflicting value returns false and leaves the round alone. */
static void
test_learn_of_conflicting_value_is_refused(void **state)
{
	px_acceptor_state st;
	px_ballot b = B(7, "n2");
	px_ballot other = B(9, "n3");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_learn(&st, &b, V("n2", "y")));
	assert_false(px_acceptor_learn(&st, &other, V("n3", "z")));
	assert_value(st.value, "n2", "y");
	assert_ballot(st.accepted, 7, "n2");
}

/* A decided round answers prepare with its value and promises nothing. */
static void
test_decided_round_answers_prepare_with_value(void **state)
{
	px_acceptor_state st;
	px_promise out;
	px_ballot chosen = B(2, "n1");
	px_ballot high = B(99, "n3");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_learn(&st, &chosen, V("n1", "x")));
	assert_false(px_acceptor_prepare(&st, &high, &out));
	assert_true(out.decided);
	assert_true(out.has_accepted);
	assert_ballot(out.accepted, 2, "n1");
	assert_value(out.value, "n1", "x");
	assert_true(st.promised.number < 99);
}

/* A decided round never changes value; accept learns the chosen one. */
static void
test_decided_round_answers_accept_with_value(void **state)
{
	px_acceptor_state st;
	px_accepted out;
	px_ballot chosen = B(2, "n1");
	px_ballot high = B(99, "n3");

	(void) state;
	px_acceptor_init(&st);
	assert_true(px_acceptor_learn(&st, &chosen, V("n1", "x")));

	assert_false(px_acceptor_accept(&st, &high, V("n3", "z"), &out));
	assert_false(out.accepted);
	assert_true(out.decided);
	assert_ballot(out.chosen_ballot, 2, "n1");
	assert_value(out.value, "n1", "x");
	assert_value(st.value, "n1", "x");

	/* the chosen value itself is "accepted": it is what the round holds */
	assert_false(px_acceptor_accept(&st, &high, V("n1", "x"), &out));
	assert_true(out.accepted);
	assert_true(out.decided);
}

/* A standing promise raises every round it covers, even one never seen. */
static void
test_standing_promise_covers_later_rounds(void **state)
{
	px_standing sp;
	px_acceptor_state st;
	px_promise pout;
	px_accepted aout;
	px_ballot b = B(5, "n1");

	(void) state;
	px_standing_init(&sp);
	px_acceptor_init(&st);
	px_standing_apply(&sp, 10, &st);
	assert_true(promise(&st, b, &pout));
	assert_true(px_standing_grant(&sp, 10, &b));

	/* round 12 has no state of its own: lower ballots are refused there */
	px_acceptor_init(&st);
	px_standing_apply(&sp, 12, &st);
	assert_false(accept(&st, B(4, "n2"), V("n2", "y"), &aout));
	assert_ballot(aout.promised_ballot, 5, "n1");
	assert_false(promise(&st, B(5, "n1"), &pout)); /* promised once */
	assert_true(accept(&st, b, V("n1", "x"), &aout));

	/* round 9, below the standing promise, is free */
	px_acceptor_init(&st);
	px_standing_apply(&sp, 9, &st);
	assert_true(accept(&st, B(4, "n2"), V("n2", "y"), &aout));

	/* a higher ballot still wins a round: the standing one only adds */
	px_acceptor_init(&st);
	px_standing_apply(&sp, 13, &st);
	assert_true(promise(&st, B(6, "n3"), &pout));
	px_standing_apply(&sp, 13, &st);
	assert_ballot(st.promised, 6, "n3");
	assert_false(accept(&st, b, V("n1", "z"), &aout));
}

/* A standing promise moves only to higher ballots, and never drops rounds. */
static void
test_standing_promise_grant_rules(void **state)
{
	px_standing sp;
	px_acceptor_state st;
	px_accepted aout;
	px_ballot b5 = B(5, "n1");
	px_ballot b7 = B(7, "n2");
	px_ballot none = B(-1, "n1");
	px_ballot b4 = B(4, "n9");
	px_ballot b8 = B(8, "n3");

	(void) state;
	px_standing_init(&sp);
	assert_false(px_standing_grant(&sp, 3, &none));
	assert_true(px_standing_grant(&sp, 10, &b5));
	assert_false(px_standing_grant(&sp, 10, &b5));  /* the same ballot again */
	assert_false(px_standing_grant(&sp, 2, &b5));
	assert_false(px_standing_grant(&sp, 20, &b4));

	/* b7 from round 20: rounds 10..19 keep a promise, now b7 */
	assert_true(px_standing_grant(&sp, 20, &b7));
	assert_int_equal(sp.from_round, 10);
	assert_ballot(sp.ballot, 7, "n2");
	px_acceptor_init(&st);
	px_standing_apply(&sp, 15, &st);
	assert_false(accept(&st, b5, V("n1", "x"), &aout));

	/* from a lower round: the promise reaches down */
	assert_true(px_standing_grant(&sp, 4, &b8));
	assert_int_equal(sp.from_round, 4);

	/* a decided round is frozen */
	px_acceptor_init(&st);
	assert_true(px_acceptor_learn(&st, &b5, V("n1", "x")));
	px_standing_apply(&sp, 6, &st);
	assert_ballot(st.promised, -1, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_round_is_empty),
		cmocka_unit_test(test_fresh_acceptor_promises_first_ballot),
		cmocka_unit_test(test_promised_5_rejects_prepare_4),
		cmocka_unit_test(test_promised_5_rejects_prepare_5_again),
		cmocka_unit_test(test_promise_orders_equal_numbers_by_id),
		cmocka_unit_test(test_promised_5_rejects_accept_4),
		cmocka_unit_test(test_promised_5_accepts_5),
		cmocka_unit_test(test_accept_above_promise_raises_promise),
		cmocka_unit_test(test_duplicate_accept_needs_no_write),
		cmocka_unit_test(test_promise_reports_accepted_value),
		cmocka_unit_test(test_no_ballot_is_refused),
		cmocka_unit_test(test_learn_decides_round),
		cmocka_unit_test(test_learn_of_conflicting_value_is_refused),
		cmocka_unit_test(test_decided_round_answers_prepare_with_value),
		cmocka_unit_test(test_decided_round_answers_accept_with_value),
		cmocka_unit_test(test_standing_promise_covers_later_rounds),
		cmocka_unit_test(test_standing_promise_grant_rules),
	};

	return cmocka_run_group_tests_name("acceptor", tests, NULL, NULL);
}
