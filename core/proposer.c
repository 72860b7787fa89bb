/*
 * proposer.c
 *    The proposer's side of single-decree Paxos for one round: phase 1a
 *    (prepare), counting phase-1b promises, phase 2a (accept), counting
 *    phase-2b acceptances, and retrying with a higher ballot.
 *
 * The caller sends the requests to the n_hosts acceptors (host 0 .. n-1),
 * feeds each answer in as it arrives, in any order, and acts on the status
 * returned.  Answers may be lost, duplicated, late or stale (meant for an
 * earlier attempt): the proposer counts each host at most once per phase and
 * drops answers that are not about its current ballot, so the caller needs
 * no bookkeeping of its own beyond matching answers to the round.
 *
 * Invariant kept here: what p->proposal holds in phase 2a is the value of
 * the highest ballot accepted among the first quorum of promises, or own if
 * none accepted anything; that is what makes a chosen value stay chosen.
 */
#include "paxos_core.h"

#include <string.h>

static bool host_valid(const px_proposer *p, int host);
static void note_number(px_proposer *p, int64_t number);
static void note_round(px_proposer *p, int64_t round);
static void reset_phase(px_proposer *p);
static px_status decide_chosen(px_proposer *p, px_value v, const px_ballot *b);
static px_status phase_status(const px_proposer *p);

/*
 * px_proposer_start begins an attempt (phase 1a is then sent by the caller
 * with p->ballot).  The quorum is a strict majority so that any two quorums
 * share an acceptor.
 */
int
px_proposer_start(px_proposer *p, int n_hosts, const char *proposer_id,
				  int64_t number, px_value own)
{
	if (n_hosts < 1 || n_hosts > PX_MAX_HOSTS || number < 0)
		return -1;

	memset(p, 0, sizeof(*p));
	if (px_ballot_set(&p->ballot, number, proposer_id) != 0)
		return -1;
	p->n_hosts = n_hosts;
	p->quorum = n_hosts / 2 + 1;
	p->own = own;
	p->highest_number = number;
	p->max_round = -1;
	reset_phase(p);
	return 0;
}

/*
 * reset_phase forgets the answers of the previous phase and any adopted
 * value: each phase and each new ballot counts afresh.
 */
static void
reset_phase(px_proposer *p)
{
	p->proposal = p->own;
	p->adopted = false;
	p->adopted_ballot.number = -1;
	p->adopted_ballot.proposer[0] = '\0';
	p->adopted_acks = 0;
	p->responded = 0;
	p->acks = 0;
	p->nacks = 0;
	p->in_phase2 = false;
	p->chosen = false;
}

/* host_valid: answers from hosts we did not address are ignored. */
static bool
host_valid(const px_proposer *p, int host)
{
	return host >= 0 && host < p->n_hosts;
}

/*
 * note_number remembers the highest ballot number any answer showed, so
 * that px_proposer_retry can go above all of them in one step.
 */
static void
note_number(px_proposer *p, int64_t number)
{
	if (number > p->highest_number)
		p->highest_number = number;
}

/* note_round remembers the highest round any acceptor reported. */
static void
note_round(px_proposer *p, int64_t round)
{
	if (round > p->max_round)
		p->max_round = round;
}

/*
 * decide_chosen ends the attempt: v is chosen, b a ballot under which a
 * majority accepted it.  Later answers change nothing.
 */
static px_status
decide_chosen(px_proposer *p, px_value v, const px_ballot *b)
{
	p->chosen = true;
	p->proposal = v;
	p->chosen_ballot = *b;
	return PX_CHOSEN;
}

/*
 * phase_status is where the current phase stands after the answers
 * counted so far.  PX_PROMISED and PX_CHOSEN need a quorum of acks; the
 * attempt is preempted once so many refused that the hosts left cannot
 * make a quorum (n - nacks < quorum).
 */
static px_status
phase_status(const px_proposer *p)
{
	if (p->chosen)
		return PX_CHOSEN;
	if (p->acks >= p->quorum)
		return p->in_phase2 ? PX_CHOSEN : PX_PROMISED;
	if (p->n_hosts - p->nacks < p->quorum)
		return PX_PREEMPTED;
	return PX_WAIT;
}

/*
 * px_proposer_status lets a caller that collects answers elsewhere (or
 * stops at a timeout) ask where the attempt stands: a timeout with
 * PX_WAIT means no majority answered at all.
 */
px_status
px_proposer_status(const px_proposer *p)
{
	return phase_status(p);
}

/*
 * px_proposer_on_promise counts a phase-1b answer.  A decided answer ends
 * the attempt whatever the phase.  Otherwise, until a quorum promised, the
 * value of the highest accepted ballot among promises becomes the proposal
 * (phase 2a must propose it); if a quorum of promises report the same
 * accepted ballot, a majority accepted that value: it is chosen, and phase
 * 2 is not needed.  After the quorum the proposal no longer changes, since
 * the caller may already be sending it.
 */
px_status
px_proposer_on_promise(px_proposer *p, int host, const px_promise *r)
{
	uint64_t bit;

	if (p->chosen)
		return PX_CHOSEN;
	if (!host_valid(p, host) || r == NULL)
		return phase_status(p);

	note_number(p, r->promised_ballot.number);
	if (r->has_accepted)
		note_number(p, r->accepted.number);
	note_round(p, r->max_round);

	if (r->decided && r->has_accepted)
		return decide_chosen(p, r->value, &r->accepted);

	/* a phase-1b answer that arrives during phase 2 is of no use */
	if (p->in_phase2)
		return phase_status(p);

	bit = UINT64_C(1) << host;
	if (p->responded & bit)
		return phase_status(p);

	/*
	 * Stale answers: a promise is for our ballot only; a refusal to our
	 * ballot reports a promise at least as high (the rule is strict).  A
	 * refusal that reports our own ballot stays a refusal: the promise may
	 * have gone to an earlier process of ours that used the same ballot
	 * before a crash, and counting it twice could let two processes both
	 * reach phase 2 with one ballot and different values.
	 */
	if (r->promised && px_ballot_cmp(&r->promised_ballot, &p->ballot) != 0)
		return phase_status(p);
	if (!r->promised && px_ballot_cmp(&r->promised_ballot, &p->ballot) < 0)
		return phase_status(p);

	p->responded |= bit;
	if (!r->promised)
	{
		p->nacks++;
		return phase_status(p);
	}

	if (r->has_accepted)
	{
		int cmp =
			p->adopted ? px_ballot_cmp(&r->accepted, &p->adopted_ballot) : 1;

		if (cmp > 0 && p->acks < p->quorum)
		{
			p->adopted = true;
			p->adopted_ballot = r->accepted;
			p->proposal = r->value;
			p->adopted_acks = 1;
		}
		else if (cmp == 0)
			p->adopted_acks++;
	}
	p->acks++;

	if (p->adopted && p->adopted_acks >= p->quorum)
		return decide_chosen(p, p->proposal, &p->adopted_ballot);
	return phase_status(p);
}

/*
 * px_proposer_begin_accept starts phase 2a: the answers of phase 1 are
 * forgotten, the proposal (adopted or own) is kept.
 */
void
px_proposer_begin_accept(px_proposer *p)
{
	p->responded = 0;
	p->acks = 0;
	p->nacks = 0;
	p->in_phase2 = true;
}

/*
 * px_proposer_on_accepted counts a phase-2b answer.  An acceptance counts
 * only if it is of our ballot; a refusal only if it reports a promise above
 * our ballot (accept is refused only then).  A quorum of acceptances of one
 * ballot is what "chosen" means, so p->ballot is the chosen ballot.
 */
px_status
px_proposer_on_accepted(px_proposer *p, int host, const px_accepted *r)
{
	uint64_t bit;

	if (p->chosen)
		return PX_CHOSEN;
	if (!host_valid(p, host) || r == NULL)
		return phase_status(p);

	note_number(p, r->promised_ballot.number);

	if (r->decided)
		return decide_chosen(p, r->value, &r->chosen_ballot);

	if (!p->in_phase2)
		return phase_status(p);

	bit = UINT64_C(1) << host;
	if (p->responded & bit)
		return phase_status(p);
	if (r->accepted && px_ballot_cmp(&r->promised_ballot, &p->ballot) != 0)
		return phase_status(p);
	if (!r->accepted && px_ballot_cmp(&r->promised_ballot, &p->ballot) <= 0)
		return phase_status(p);

	p->responded |= bit;
	if (r->accepted)
		p->acks++;
	else
		p->nacks++;

	if (p->acks >= p->quorum)
		return decide_chosen(p, p->proposal, &p->ballot);
	return phase_status(p);
}

/*
 * px_proposer_retry starts a new attempt (phase 1a again) after a
 * preemption or a timeout.  The new number is above every number seen, so
 * the next prepare is not refused for being too low by any acceptor that
 * answered; the proposer id in the ballot keeps it unique.
 */
void
px_proposer_retry(px_proposer *p)
{
	int64_t next = p->highest_number;

	if (p->ballot.number > next)
		next = p->ballot.number;
	if (next < INT64_MAX)
		next++;
	p->ballot.number = next;
	p->highest_number = next;
	reset_phase(p);
}

/*
 * px_proposer_value_changed tells the caller that the chosen value is not
 * the one it asked for (the README's value_changed flag): an appender must
 * then try its value again in the next round.
 */
bool
px_proposer_value_changed(const px_proposer *p)
{
	return !px_value_equal(p->proposal, p->own);
}
