/*
 * px_test.h
 *    Small helpers shared by the unit tests of the consensus core: build
 *    ballots and values in one expression, so that tests read as timelines.
 *
 * Include after cmocka.h (which needs stdarg.h, stddef.h and setjmp.h).
 */
#ifndef PX_TEST_H
#define PX_TEST_H

#include "paxos_core.h"

/* B builds ballot (number, proposer); the id must fit. */
static inline px_ballot
B(int64_t number, const char *proposer)
{
	px_ballot b;

	assert_int_equal(px_ballot_set(&b, number, proposer), 0);
	return b;
}

/* V builds a value; data NULL is a no-op. */
static inline px_value
V(const char *id, const char *data)
{
	px_value v;

	v.id = id;
	v.data = data;
	return v;
}

/* assert_ballot checks a ballot's number and proposer. */
#define assert_ballot(b, n, id)                                               \
	do                                                                        \
	{                                                                         \
		assert_int_equal((b).number, (n));                                    \
		assert_string_equal((b).proposer, (id));                              \
	} while (0)

/* assert_value checks a value's id and data (data may be NULL). */
#define assert_value(v, id_, data_)                                           \
	do                                                                        \
	{                                                                         \
		assert_true(px_value_equal((v), V((id_), (data_))));                  \
	} while (0)

#endif /* PX_TEST_H */
