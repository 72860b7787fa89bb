/*
 * paxos_core.h
 *    The portable consensus core of pg_paxos: the decisions of a Paxos
 *    acceptor and proposer, and the bookkeeping of a Multi-Paxos log, as
 *    deterministic state machines.
 *
 * Nothing here does I/O, allocates, reads a clock or draws random numbers:
 * the caller (the PostgreSQL extension, or the simulated network of the unit
 * tests) persists state, sends messages, measures time and supplies
 * randomness.  That keeps every protocol decision testable in one process.
 *
 * Strings inside px_value are borrowed: the core never frees or copies them,
 * and a state that refers to a request's value is only valid while that
 * request's memory is.  Ballots carry their proposer id by value.
 */
#ifndef PAXOS_CORE_H
#define PAXOS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest proposer id, including the terminating NUL. */
#define PX_PROPOSER_ID_MAX 256

/* Most hosts one proposer can address (bitmask of responders). */
#define PX_MAX_HOSTS 64

/*
 * A proposal number as the pg_paxos README orders them: first by number,
 * then by proposer id (byte order).  number < 0 means "no ballot".
 */
typedef struct px_ballot
{
	int64_t number;
	char proposer[PX_PROPOSER_ID_MAX];
} px_ballot;

/*
 * A value in the log: an identifier unique within its round (the proposer
 * id that first proposed it) and its text.  data may be NULL: a proposal of
 * NULL is a no-op, used to learn or to fill a round.
 */
typedef struct px_value
{
	const char *id;
	const char *data;
} px_value;

/* Durable state of one acceptor for one (group, round). */
typedef struct px_acceptor_state
{
	px_ballot promised; /* highest ballot promised; number -1: none */
	bool has_accepted;
	px_ballot accepted; /* ballot of the accepted value */
	px_value value;     /* accepted value, if has_accepted */
	bool decided;       /* value is known to be chosen */
} px_acceptor_state;

/* Phase 1b: an acceptor's answer to prepare. */
typedef struct px_promise
{
	bool promised;             /* true: the acceptor joined this ballot */
	px_ballot promised_ballot; /* acceptor's promise after the request */
	bool has_accepted;
	px_ballot accepted;
	px_value value;
	bool decided;      /* value is the chosen one */
	int64_t max_round; /* highest round the acceptor knows, -1: none */
} px_promise;

/*
 * Phase 2b: an acceptor's answer to accept.  A decided round answers with
 * the chosen value (as a promise does), so that a proposer that skipped
 * phase 1 (a leader) learns at once that its round is taken.
 */
typedef struct px_accepted
{
	bool accepted;
	px_ballot promised_ballot; /* acceptor's promise after the request */
	bool decided; /* the round is decided: the two fields below are set */
	/* if decided: the ballot the value was chosen under */
	px_ballot chosen_ballot;
	px_value value; /* if decided: the chosen value */
} px_accepted;

/* Status returned by the proposer's steps. */
typedef enum px_status
{
	PX_WAIT = 0, /* need more responses */
	PX_PROMISED, /* phase 1 done: send accept for p->proposal */
	PX_CHOSEN,   /* a value is chosen: p->proposal */
	PX_PREEMPTED /* a majority is out of reach: retry higher */
} px_status;

/* One proposer's attempt at a single round (single-decree Paxos). */
typedef struct px_proposer
{
	int n_hosts;
	int quorum;        /* n_hosts / 2 + 1 */
	px_ballot ballot;  /* ballot of the current attempt */
	px_value own;      /* the value the caller wants chosen */
	px_value proposal; /* value sent in phase 2 / the chosen one */
	bool adopted;      /* proposal came from an earlier acceptance */
	px_ballot adopted_ballot;
	uint64_t responded;     /* bitmask of hosts heard in this phase */
	int acks;               /* promises or acceptances in this phase */
	int nacks;              /* refusals in this phase */
	int64_t highest_number; /* highest ballot number seen anywhere */
	int64_t max_round;      /* highest round any acceptor reported */
	bool in_phase2;
	int adopted_acks; /* promises that reported adopted_ballot */
	bool chosen;      /* proposal is known chosen; attempt is over */
	/* if chosen: a ballot a majority accepted it under (pass it to learn) */
	px_ballot chosen_ballot;
} px_proposer;

/* --- ballots ----------------------------------------------------------- */

/* px_ballot_cmp orders ballots: <0, 0, >0 like strcmp. */
int px_ballot_cmp(const px_ballot *a, const px_ballot *b);

/* px_ballot_set fills a ballot; returns -1 if the id is too long. */
int px_ballot_set(px_ballot *b, int64_t number, const char *proposer);

/* px_value_equal compares ids and data (NULL data equals only NULL). */
bool px_value_equal(px_value a, px_value b);

/* --- acceptor ---------------------------------------------------------- */

/* px_acceptor_init gives the state of a round never heard of. */
void px_acceptor_init(px_acceptor_state *st);

/*
 * px_acceptor_prepare (phase 1b): promise ballot b if it is higher than any
 * promise made for this round.  Fills out; returns true when st changed and
 * must be made durable before out is sent.  A decided round never changes:
 * it answers decided with its value.  out->max_round is set to -1: the
 * caller, who knows the other rounds, fills it in.
 */
bool px_acceptor_prepare(px_acceptor_state *st, const px_ballot *b,
						 px_promise *out);

/*
 * px_acceptor_accept (phase 2b): accept (b, v) unless a higher ballot was
 * promised.  Returns true when st changed and must be made durable first.
 * A decided round never changes: out->decided is set with the chosen value,
 * and out->accepted tells whether v is that value.
 */
bool px_acceptor_accept(px_acceptor_state *st, const px_ballot *b, px_value v,
						px_accepted *out);

/*
 * px_acceptor_learn records that (b, v) was chosen.  Returns true when st
 * changed.  A learner told of a different value than one it already knows
 * as chosen returns false and leaves st alone (caller reports the anomaly:
 * st->decided && !px_value_equal(st->value, v) before the call).  Learning
 * the known value again also returns false: there is nothing to persist.
 */
bool px_acceptor_learn(px_acceptor_state *st, const px_ballot *b, px_value v);

/*
 * A standing promise: ballot promised for every round from from_round on,
 * as a leader asks once instead of round by round.  An acceptor keeps one
 * per group, next to its rounds' states; a round's effective promise is
 * the higher of its own and the standing one (px_standing_apply).
 */
typedef struct px_standing
{
	bool valid;
	int64_t from_round;
	px_ballot ballot;
} px_standing;

/* px_standing_init: no standing promise. */
void px_standing_init(px_standing *s);

/*
 * px_standing_apply raises the promise of round's state to the standing
 * ballot where the standing promise covers the round and is higher.  Call
 * it on a loaded state before px_acceptor_prepare/accept.  A decided round
 * is left alone.
 */
void px_standing_apply(const px_standing *s, int64_t round,
					   px_acceptor_state *st);

/*
 * px_standing_grant extends the standing promise to ballot b from round
 * on, after px_acceptor_prepare promised b for that round (on the state
 * px_standing_apply raised).  Granted only to a ballot higher than the
 * standing one (a ballot is promised at most once); the rounds the old
 * promise covered stay covered, by b.  Returns true when s changed and
 * must be made durable before the answer is sent.  The proposer may skip
 * phase 1 in a round above `round` only if a majority granted and none
 * of them had accepted anything above `round`.
 */
bool px_standing_grant(px_standing *s, int64_t round, const px_ballot *b);

/* --- proposer ---------------------------------------------------------- */

/*
 * px_proposer_start begins an attempt to get `own` chosen with ballot
 * (number, proposer_id) among n_hosts acceptors.  Returns -1 on bad
 * arguments (no hosts, too many hosts, id too long).
 */
int px_proposer_start(px_proposer *p, int n_hosts, const char *proposer_id,
					  int64_t number, px_value own);

/*
 * px_proposer_on_promise feeds host's phase-1b answer.  Returns PX_PROMISED
 * once a quorum promised (p->proposal is what to send in phase 2: the value
 * of the highest accepted ballot among promises, or own); PX_CHOSEN when an
 * answer proves a value chosen (decided, or a quorum accepted the same
 * ballot); PX_PREEMPTED when a quorum can no longer promise.  Duplicate
 * answers from one host are ignored, and so are stale ones (a promise of
 * another ballot, a refusal below ours).  Once PX_CHOSEN was returned the
 * attempt is over: every later call returns PX_CHOSEN and changes nothing.
 */
px_status px_proposer_on_promise(px_proposer *p, int host,
								 const px_promise *r);

/*
 * px_proposer_status is where the attempt stands after the answers counted
 * so far, without feeding one: what the last px_proposer_on_* call
 * returned.  (Calling px_proposer_on_promise/on_accepted with a host out of
 * range, e.g. -1, and r == NULL also just returns it.)
 */
px_status px_proposer_status(const px_proposer *p);

/*
 * px_proposer_begin_accept moves to phase 2 with p->proposal.  A leader
 * whose ballot a majority promised for every round may call it right after
 * px_proposer_start, skipping phase 1.
 */
void px_proposer_begin_accept(px_proposer *p);

/*
 * px_proposer_on_accepted feeds host's phase-2b answer.  Returns PX_CHOSEN
 * once a quorum accepted (or an answer is decided), PX_PREEMPTED when that
 * can no longer happen.  Duplicate and stale answers are ignored.
 */
px_status px_proposer_on_accepted(px_proposer *p, int host,
								  const px_accepted *r);

/*
 * px_proposer_retry starts a new attempt with a ballot number above every
 * number seen so far, keeping own value.
 */
void px_proposer_retry(px_proposer *p);

/* px_proposer_value_changed: the chosen value is not own (README's flag). */
bool px_proposer_value_changed(const px_proposer *p);

/* --- Multi-Paxos log ---------------------------------------------------- */

/*
 * px_next_append_round is the round an append should try next: one past the
 * highest round known locally or reported by any acceptor.
 */
int64_t px_next_append_round(int64_t local_max_round,
							 int64_t reported_max_round);

/*
 * px_backoff_us is how long to wait before retrying after `conflicts`
 * consecutive preemptions: a random time in [0, min(max_us, base_us <<
 * conflicts)), drawn from `random`.  Randomness is what keeps competing
 * proposers fair: none of them is favoured by its id.
 */
int64_t px_backoff_us(int conflicts, uint64_t random, int64_t base_us,
					  int64_t max_us);

#endif /* PAXOS_CORE_H */
