/*
 * ballot.c
 *    Proposal numbers (ballots) and values: how they are ordered, built and
 *    compared.
 *
 * Every Paxos step compares ballots, so their order is defined once here:
 * first by number, then by proposer id in byte order, as the pg_paxos README
 * orders proposals ("a number smaller than n, or equal with lower node id").
 * Two proposers therefore never share a ballot, and a ballot names the one
 * value its proposer sent with it in phase 2a.
 */
#include "paxos_core.h"

#include <string.h>

/*
 * px_ballot_cmp orders two ballots.  The proposer ids are compared as
 * unsigned bytes (strncmp does so) and never read past their buffer, so a
 * ballot filled by px_ballot_set always compares the same way on every node.
 */
int
px_ballot_cmp(const px_ballot *a, const px_ballot *b)
{
	if (a->number != b->number)
		return a->number < b->number ? -1 : 1;
	return strncmp(a->proposer, b->proposer, PX_PROPOSER_ID_MAX);
}

/*
 * px_ballot_set fills a ballot.  The id is copied (ballots are values, not
 * borrowed like px_value strings) and the rest of the buffer zeroed, so that
 * a ballot can be copied or persisted as a whole.  Refuses a missing id or
 * one that does not fit rather than truncating it: two truncated ids could
 * become equal and two proposers would then share ballots.
 */
int
px_ballot_set(px_ballot *b, int64_t number, const char *proposer)
{
	size_t len;

	if (proposer == NULL)
		return -1;
	len = strlen(proposer);
	if (len >= PX_PROPOSER_ID_MAX)
		return -1;
	memset(b, 0, sizeof(*b));
	b->number = number;
	memcpy(b->proposer, proposer, len);
	return 0;
}

/* same_string compares two optional strings: NULL equals only NULL. */
static bool
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * px_value_equal compares values by id and data.  The id alone is not
 * enough: a proposer proposes several values over a log (and no-ops with
 * NULL data), all with its own id.
 */
bool
px_value_equal(px_value a, px_value b)
{
	return same_string(a.id, b.id) && same_string(a.data, b.data);
}
