/*
 * acceptor.c
 *    The acceptor's side of single-decree Paxos for one (group, round):
 *    phase 1b (promise), phase 2b (accept) and learn.
 *
 * These functions only decide.  Each takes the durable state of the round,
 * updates it and fills the answer; when it returns true the caller must make
 * the new state durable before sending the answer, since a promise or an
 * acceptance that a restart forgets breaks safety.  Strings of values are
 * borrowed: an accepted value points into the caller's request until the
 * caller copies it into its own storage.
 *
 * The rules:
 *   - promise iff the ballot is higher than every ballot promised (strict:
 *     a ballot is promised at most once, so a proposer that restarts and
 *     reuses a ballot can never gather a second quorum for it);
 *   - accept iff the ballot is at least the one promised, and promise it;
 *   - a decided round is frozen: it answers every request with its value.
 */
#include "paxos_core.h"

#include <string.h>

static bool ballot_valid(const px_ballot *b);
static void fill_promise(const px_acceptor_state *st, bool promised,
						 px_promise *out);

/*
 * px_acceptor_init gives the state of a round never heard of: nothing
 * promised, nothing accepted.  A ballot number of -1 is below every ballot a
 * proposer may use, so the first valid prepare is promised.
 */
void
px_acceptor_init(px_acceptor_state *st)
{
	memset(st, 0, sizeof(*st));
	st->promised.number = -1;
	st->accepted.number = -1;
	st->has_accepted = false;
	st->value.id = NULL;
	st->value.data = NULL;
	st->decided = false;
}

/*
 * ballot_valid: a request must carry a real ballot.  A negative number is
 * the "no ballot" of px_acceptor_init; accepting it would let an empty
 * request compare above an empty promise.
 */
static bool
ballot_valid(const px_ballot *b)
{
	return b->number >= 0;
}

/* fill_promise copies what phase 1b reports from the round's state. */
static void
fill_promise(const px_acceptor_state *st, bool promised, px_promise *out)
{
	memset(out, 0, sizeof(*out));
	out->promised = promised;
	out->promised_ballot = st->promised;
	out->has_accepted = st->has_accepted;
	out->accepted = st->accepted;
	if (st->has_accepted)
		out->value = st->value;
	out->decided = st->decided;
	out->max_round = -1;
}

/*
 * px_acceptor_prepare (phase 1b).  Promising b means never accepting a
 * ballot below it; the answer reports the accepted value (if any) so that
 * the proposer adopts it in phase 2a.  A decided round does not promise:
 * its answer carries decided=true and the chosen value, which ends the
 * proposer's attempt at once.
 */
bool
px_acceptor_prepare(px_acceptor_state *st, const px_ballot *b, px_promise *out)
{
	bool promise;

	if (st->decided)
	{
		fill_promise(st, false, out);
		return false;
	}

	promise = ballot_valid(b) && px_ballot_cmp(b, &st->promised) > 0;
	if (promise)
		st->promised = *b;
	fill_promise(st, promise, out);
	return promise;
}

/*
 * px_acceptor_accept (phase 2b).  A ballot equal to the promise is accepted
 * (it is the proposer we promised); a higher one too, since no promise
 * forbids it, and it becomes the promise so that lower ballots are refused
 * from now on.  Accepting the same (b, v) again changes nothing, so a
 * duplicated request costs no write.  A decided round keeps its value; it
 * says whether v is that value and hands the chosen one back.
 */
bool
px_acceptor_accept(px_acceptor_state *st, const px_ballot *b, px_value v,
				   px_accepted *out)
{
	bool changed = false;

	memset(out, 0, sizeof(*out));

	if (st->decided)
	{
		out->accepted = px_value_equal(v, st->value);
		out->promised_ballot = st->promised;
		out->decided = true;
		out->chosen_ballot = st->accepted;
		out->value = st->value;
		return false;
	}

	if (ballot_valid(b) && px_ballot_cmp(b, &st->promised) >= 0)
	{
		changed = px_ballot_cmp(b, &st->promised) != 0 || !st->has_accepted ||
				  px_ballot_cmp(b, &st->accepted) != 0 ||
				  !px_value_equal(v, st->value);
		st->promised = *b;
		st->has_accepted = true;
		st->accepted = *b;
		st->value = v;
		out->accepted = true;
	}
	out->promised_ballot = st->promised;
	return changed;
}

/*
 * px_acceptor_learn (learn).  Once a value is known chosen, the round is
 * frozen with it; the ballot it was chosen under is kept as the accepted
 * ballot, so that later answers let their receiver learn (b, v) in turn.
 * A different value for a decided round would mean two values chosen: the
 * state is left alone and the caller reports it.
 */
bool
px_acceptor_learn(px_acceptor_state *st, const px_ballot *b, px_value v)
{
	if (st->decided)
		return false;

	st->has_accepted = true;
	st->accepted = *b;
	st->value = v;
	st->decided = true;
	return true;
}

/* px_standing_init: no standing promise. */
void
px_standing_init(px_standing *s)
{
	memset(s, 0, sizeof(*s));
	s->valid = false;
	s->from_round = 0;
	s->ballot.number = -1;
}

/*
 * px_standing_apply: the standing ballot is a promise for every round it
 * covers, whether or not the round has a state of its own yet.
 */
void
px_standing_apply(const px_standing *s, int64_t round, px_acceptor_state *st)
{
	if (!s->valid || round < s->from_round || st->decided)
		return;
	if (px_ballot_cmp(&s->ballot, &st->promised) > 0)
		st->promised = s->ballot;
}

/*
 * px_standing_grant: moving from_round up would drop the promise made for
 * the rounds in between, so it only ever moves down.
 */
bool
px_standing_grant(px_standing *s, int64_t round, const px_ballot *b)
{
	if (!ballot_valid(b) || (s->valid && px_ballot_cmp(b, &s->ballot) <= 0))
		return false;
	if (!s->valid || round < s->from_round)
		s->from_round = round;
	s->ballot = *b;
	s->valid = true;
	return true;
}
