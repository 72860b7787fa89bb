/*
 * test_log.c
 *    Unit tests of the Multi-Paxos log bookkeeping (core/log.c): learned
 *    rounds, apply cursor, rounds that need a no-op, compaction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "px_test.h"
#include "paxos_log.h"

static void
test_init_refuses_bad_arguments(void **state)
{
	px_log log;
	uint8_t bits[4];

	(void) state;
	assert_int_equal(px_log_init(&log, NULL, 4, 0), PX_LOG_EARG);
	assert_int_equal(px_log_init(&log, bits, 0, 0), PX_LOG_EARG);
	assert_int_equal(px_log_init(&log, bits, 4, -1), PX_LOG_EARG);
	assert_int_equal(px_log_init(&log, bits, 4, 0), PX_LOG_OK);
	assert_int_equal(log.window, 32);
	assert_int_equal(log.max_known, -1);
	assert_int_equal(px_log_next_to_apply(&log), -1);
	assert_int_equal(px_log_next_append_round(&log, -1), 0);
}

/* Rounds learned out of order are applied in order, no further than a hole. */
static void
test_apply_waits_for_hole(void **state)
{
	px_log log;
	uint8_t bits[4];

	(void) state;
	px_log_init(&log, bits, sizeof(bits), 0);
	assert_int_equal(px_log_learn(&log, 0), 1);
	assert_int_equal(px_log_learn(&log, 2), 1);
	assert_int_equal(px_log_learn(&log, 2), 0);

	assert_int_equal(px_log_next_to_apply(&log), 0);
	assert_int_equal(px_log_mark_applied(&log, 0), PX_LOG_OK);
	assert_int_equal(px_log_next_to_apply(&log), -1); /* round 1 missing */
	assert_int_equal(px_log_mark_applied(&log, 2), PX_LOG_EORDER);

	assert_int_equal(px_log_learn(&log, 1), 1);
	assert_int_equal(log.learn_next, 3);
	assert_int_equal(px_log_next_to_apply(&log), 1);
	assert_int_equal(px_log_mark_applied(&log, 1), PX_LOG_OK);
	assert_int_equal(px_log_mark_applied(&log, 2), PX_LOG_OK);
	assert_int_equal(px_log_next_to_apply(&log), -1);
	assert_int_equal(log.apply_next, 3);
}

/*
 * Timeline: node learns 0 and 3, a peer reports round 5 exists.  Rounds
 * 1, 2, 4 and 5 must be learned by no-op proposals, lowest first.
 */
static void
test_noop_rounds_are_the_holes_up_to_known_reach(void **state)
{
	px_log log;
	uint8_t bits[2];

	(void) state;
	px_log_init(&log, bits, sizeof(bits), 0);
	assert_int_equal(px_log_next_noop_round(&log, 0), -1);
	px_log_learn(&log, 0);
	px_log_learn(&log, 3);
	assert_int_equal(px_log_next_noop_round(&log, 0), 1);
	px_log_note_round(&log, 5);
	assert_int_equal(log.max_known, 5);
	assert_int_equal(px_log_next_noop_round(&log, 2), 2);
	assert_int_equal(px_log_next_noop_round(&log, 3), 4);
	px_log_learn(&log, 1);
	px_log_learn(&log, 2);
	px_log_learn(&log, 4);
	assert_int_equal(px_log_next_noop_round(&log, 0), 5);
	px_log_learn(&log, 5);
	assert_int_equal(px_log_next_noop_round(&log, 0), -1);
	assert_int_equal(px_log_next_append_round(&log, 3), 6);
	assert_int_equal(px_log_next_append_round(&log, 8), 9);
}

/* The window is finite: compaction frees it, and the ring wraps. */
static void
test_window_and_compaction(void **state)
{
	px_log log;
	uint8_t bits[1]; /* 8 rounds */
	int64_t r;

	(void) state;
	px_log_init(&log, bits, sizeof(bits), 0);
	for (r = 0; r < 8; r++)
		assert_int_equal(px_log_learn(&log, r), 1);
	assert_int_equal(px_log_learn(&log, 8), PX_LOG_EWINDOW);
	assert_int_equal(px_log_compact(&log, 3), PX_LOG_EORDER); /* not applied */

	for (r = 0; r < 5; r++)
		assert_int_equal(px_log_mark_applied(&log, r), PX_LOG_OK);
	assert_int_equal(px_log_compact(&log, 5), PX_LOG_OK);
	assert_int_equal(log.base, 5);
	assert_true(px_log_is_learned(&log, 2)); /* compacted: learned */
	assert_int_equal(px_log_learn(&log, 2), 0);
	assert_false(px_log_is_learned(&log, 9)); /* reuses round 1's bit */
	assert_int_equal(px_log_learn(&log, 9), 1);
	assert_int_equal(px_log_learn(&log, 12), 1);
	assert_int_equal(px_log_learn(&log, 13), PX_LOG_EWINDOW);
	assert_int_equal(log.learn_next, 8);
	px_log_note_round(&log, 12);
	assert_int_equal(px_log_next_noop_round(&log, 0), 8);
	assert_int_equal(px_log_learn(&log, 8), 1);
	assert_int_equal(log.learn_next, 10);
	assert_int_equal(px_log_next_noop_round(&log, 0), 10);
}

/* A restarted node resumes from its compaction point. */
static void
test_init_from_compaction_point(void **state)
{
	px_log log;
	uint8_t bits[2];

	(void) state;
	px_log_init(&log, bits, sizeof(bits), 100);
	assert_true(px_log_is_learned(&log, 99));
	assert_false(px_log_is_learned(&log, 100));
	assert_int_equal(px_log_next_append_round(&log, -1), 100);
	assert_int_equal(px_log_learn(&log, 100), 1);
	assert_int_equal(px_log_next_to_apply(&log), 100);
}

/* Truncate below the slowest member; strong reads wait for the cursor. */
static void
test_truncation_point_and_read_ready(void **state)
{
	px_log log;
	uint8_t bits[1];
	int64_t cursors[] = {9, 4, 7};

	(void) state;
	assert_int_equal(px_log_truncation_point(cursors, 3), 4);
	assert_int_equal(px_log_truncation_point(cursors, 0), -1);

	px_log_init(&log, bits, sizeof(bits), 0);
	assert_true(px_log_read_ready(&log, -1)); /* empty group */
	assert_false(px_log_read_ready(&log, 0));
	px_log_learn(&log, 0);
	px_log_mark_applied(&log, 0);
	assert_true(px_log_read_ready(&log, 0));
	assert_false(px_log_read_ready(&log, 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_refuses_bad_arguments),
		cmocka_unit_test(test_apply_waits_for_hole),
		cmocka_unit_test(test_noop_rounds_are_the_holes_up_to_known_reach),
		cmocka_unit_test(test_window_and_compaction),
		cmocka_unit_test(test_init_from_compaction_point),
		cmocka_unit_test(test_truncation_point_and_read_ready),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
