/*
 * test_ballot.c
 *    Unit tests of ballot order and value equality (core/ballot.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "px_test.h"

/* A higher number wins whatever the proposer ids. */
static void
test_number_orders_first(void **state)
{
	px_ballot low = B(1, "zzz");
	px_ballot high = B(2, "aaa");

	(void) state;
	assert_true(px_ballot_cmp(&low, &high) < 0);
	assert_true(px_ballot_cmp(&high, &low) > 0);
}

/* Equal numbers: the lower node id loses, as the README says. */
static void
test_equal_numbers_order_by_proposer(void **state)
{
	px_ballot a = B(5, "node-a");
	px_ballot b = B(5, "node-b");

	(void) state;
	assert_true(px_ballot_cmp(&a, &b) < 0);
	assert_true(px_ballot_cmp(&b, &a) > 0);
}

/* The same number from the same proposer is the same ballot. */
static void
test_same_ballot_is_equal(void **state)
{
	px_ballot a = B(7, "node-a");
	px_ballot b = B(7, "node-a");

	(void) state;
	assert_int_equal(px_ballot_cmp(&a, &b), 0);
}

/* Ids compare as unsigned bytes, the same on every platform. */
static void
test_proposer_ids_compare_as_unsigned_bytes(void **state)
{
	px_ballot ascii = B(1, "a");
	px_ballot high = B(1, "\xc3\xa9"); /* UTF-8 e-acute */

	(void) state;
	assert_true(px_ballot_cmp(&ascii, &high) < 0);
}

/* "No ballot" (-1) is below every real ballot, even with an empty id. */
static void
test_no_ballot_is_lowest(void **state)
{
	px_ballot none = B(-1, "");
	px_ballot zero = B(0, "");

	(void) state;
	assert_true(px_ballot_cmp(&none, &zero) < 0);
}

/* An id that does not fit is refused, never truncated into another id. */
static void
test_set_refuses_long_or_missing_id(void **state)
{
	char id[PX_PROPOSER_ID_MAX + 1];
	px_ballot b;

	(void) state;
	memset(id, 'x', sizeof(id));
	id[PX_PROPOSER_ID_MAX] = '\0';
	assert_int_equal(px_ballot_set(&b, 1, id), -1);
	id[PX_PROPOSER_ID_MAX - 1] = '\0';
	assert_int_equal(px_ballot_set(&b, 1, id), 0);
	assert_int_equal(strlen(b.proposer), PX_PROPOSER_ID_MAX - 1);
	assert_int_equal(px_ballot_set(&b, 1, NULL), -1);
}

/* Values are equal by id and data; NULL data (no-op) equals only NULL. */
static void
test_value_equality(void **state)
{
	(void) state;
	assert_true(px_value_equal(V("n1", "x"), V("n1", "x")));
	assert_false(px_value_equal(V("n1", "x"), V("n2", "x")));
	assert_false(px_value_equal(V("n1", "x"), V("n1", "y")));
	assert_false(px_value_equal(V("n1", "x"), V("n1", NULL)));
	assert_false(px_value_equal(V("n1", NULL), V("n1", "")));
	assert_true(px_value_equal(V("n1", NULL), V("n1", NULL)));
	assert_false(px_value_equal(V("n1", NULL), V("n2", NULL)));
	assert_true(px_value_equal(V(NULL, NULL), V(NULL, NULL)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_number_orders_first),
		cmocka_unit_test(test_equal_numbers_order_by_proposer),
		cmocka_unit_test(test_same_ballot_is_equal),
		cmocka_unit_test(test_proposer_ids_compare_as_unsigned_bytes),
		cmocka_unit_test(test_no_ballot_is_lowest),
		cmocka_unit_test(test_set_refuses_long_or_missing_id),
		cmocka_unit_test(test_value_equality),
	};

	return cmocka_run_group_tests_name("ballot", tests, NULL, NULL);
}
