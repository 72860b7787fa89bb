/*
 * proposer.c
 *    Single-decree Paxos for one round of a group's log, as the pg_paxos
 *    README describes it: phase 1a (prepare) and phase 2a (accept) sent to
 *    every member at once, the decisions taken by the core's px_proposer,
 *    retries with a higher ballot after a randomized backoff, and the chosen
 *    value made known to the learners.
 *
 * Two things make an append cost one round trip and one WAL flush per
 * acceptor instead of three round trips:
 *
 *  - Phase 1 of the next round travels with phase 2 of this one: the
 *    accept request asks each acceptor to also promise round + 1 to the
 *    same ballot.  If a majority promised, the backend's next append to the
 *    group starts at phase 2a.  Every round still goes through both phases;
 *    a promise kept across calls is as safe as any promise, at worst a
 *    competitor preempts it and the proposer runs phase 1 again.
 *    The batcher (PaxosAskStanding) asks instead, in phase 1, for a
 *    standing promise: its ballot for every round from this one on.  Once
 *    a majority granted it, with nothing accepted above the round, its
 *    later rounds skip phase 1 altogether, one after the other, until a
 *    round does not end chosen under that ballot (core/paxos_core.h).
 *  - The chosen round is learned through the next request this backend
 *    sends to the group ("round r was chosen under ballot b": an acceptor
 *    that accepted b in r marks r decided).  A round nobody is told about is
 *    learned on demand: phase 1 finds it accepted by a majority.
 *
 * Ballots carry a proposer id unique to this backend, so the promise of a
 * pipelined round belongs to no other process.  Everything durable lives in
 * the acceptors; the proposer's own state is only an optimisation.
 */
#include "pg_paxos.h"

#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* Backoff after a preemption: random, from 0.5 ms doubling up to 20 ms. */
#define BACKOFF_BASE_US 500
#define BACKOFF_MAX_US 20000

/* Phases tried when a majority does not answer, and the delay between. */
#define UNREACHABLE_ATTEMPTS 3
#define UNREACHABLE_DELAY_MS 250

/* First ballot numbers are drawn from [0, FIRST_BALLOT_RANGE). */
#define FIRST_BALLOT_RANGE 1024

/*
 * A batcher whose standing promise was not granted (an acceptor was busy)
 * appends round by round, and asks again this many rounds later.
 */
#define STANDING_RETRY_ROUNDS 64

/* Columns of prepare_response and of the next-round part of accept_response. */
#define PROMISE_COLUMNS 10
#define ACCEPT_COLUMNS 8

typedef struct RoundCollector
{
	px_proposer *p;
	px_proposer *next;			/* phase 1 of round + 1, or NULL */
	px_status	status;
	int64		round;
	int64		config_round;	/* membership version this proposer uses */
	int64		newer_config;	/* newer membership reported, or -1 */
	bool		ask_standing;	/* phase 1 asks for a standing promise */
	int			grants;			/* granted, with nothing accepted above */
} RoundCollector;

typedef struct LearnCollector
{
	int			needed;			/* answers to wait for */
	int			acks;
	int			local;			/* this node's index, to wait for; or -1 */
	bool		local_done;
} LearnCollector;

/*
 * What this backend carries from one call to the next, per the header
 * comment; memory in ProposerContext.
 */
typedef struct ProposerCarry
{
	/* a round prepared ahead */
	bool		has_next;
	char	   *next_group;
	int64		next_round;
	int64		next_config;
	px_proposer next;

	/* a round chosen under our ballot, not yet made known */
	bool		has_learn;
	char	   *learn_group;
	int64		learn_round;
	int64		learn_number;
	/* with PaxosLearnInProcess: to tell the peers if no accept carries it */
	char	   *learn_proposer;
	px_value	learn_value;
	List	   *learn_peers;	/* connection strings */

	/* a standing promise a majority granted this process's ballot */
	bool		has_standing;
	char		standing_group[PAXOS_GROUP_ID_MAX];	/* also of standing_retry */
	int64		standing_retry;	/* not granted: ask again from this round */
	int64		standing_number;
	int64		standing_next;	/* nothing was sent under it from here on */
	int64		standing_config;
	int			standing_hosts;
} ProposerCarry;

static MemoryContext ProposerContext = NULL;
static ProposerCarry carry;
static char *backend_proposer_id = NULL;

static const char *BackendProposerId(void);
static char *CopyField(PGresult *res, int col);
static bool ParsePromise(PGresult *res, int first, px_promise *r, int64 *config_round);
static bool FeedPromise(RoundCollector *rc, px_proposer *p, int host,
						PGresult *res, int first);
static bool OnPromise(void *arg, int host, PGresult *res, const char *error);
static bool StandingGranted(const RoundCollector *rc, PGresult *res);
static bool OnAccepted(void *arg, int host, PGresult *res, const char *error);
static bool OnLearned(void *arg, int host, PGresult *res, const char *error);
static int	LocalHostIndex(List *hosts, const char *own);
static void LearnHere(const char *group_id, int64 round, const px_ballot *ballot,
					  px_value value);
static void Backoff(int conflicts);
static void Retry(px_proposer *p);
static void NoMajority(const char *group_id, int64 round, int nhosts,
					   const FanoutStats *stats) pg_attribute_noreturn();
static void Unreachable(const char *group_id, int64 round, int nhosts,
						const FanoutStats *stats, int attempts);
static void CarryNext(const char *group_id, int64 round, int64 config_round,
					  const px_proposer *next);
static void CarryLearn(const char *group_id, int64 round, int64 number);
static void CarryLearnValue(const char *group_id, int64 round, const px_ballot *ballot,
							px_value value, PeerConnection **peers, int npeers);
static char *CarryString(const char *s);

/*
 * BackendProposerId is the proposer part of every ballot this backend
 * makes: node id, pid and 32 random bits, unique in the cluster.
 */
static const char *
BackendProposerId(void)
{
	if (backend_proposer_id == NULL)
		backend_proposer_id =
			MemoryContextStrdup(TopMemoryContext,
								psprintf("%s/%d/%08x",
										 PaxosNodeId[0] ? PaxosNodeId : "node",
										 MyProcPid,
										 (unsigned) pg_prng_uint32(&pg_global_prng_state)));
	return backend_proposer_id;
}

/* CopyField returns a palloc'd copy of a result field, NULL for SQL NULL. */
static char *
CopyField(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? NULL : pstrdup(PQgetvalue(res, 0, col));
}

/*
 * ParsePromise reads a phase-1b answer from columns first .. first + 9 of
 * res (the layout of prepare_response).  false if there is none (the
 * acceptor did not handle the pipelined prepare).
 */
static bool
ParsePromise(PGresult *res, int first, px_promise *r, int64 *config_round)
{
	memset(r, 0, sizeof(*r));
	if (PQgetisnull(res, 0, first))
		return false;
	r->promised = strcmp(PQgetvalue(res, 0, first), "t") == 0;
	px_ballot_set(&r->promised_ballot, strtoi64(PQgetvalue(res, 0, first + 2), NULL, 10),
				  PQgetvalue(res, 0, first + 1));
	r->has_accepted = !PQgetisnull(res, 0, first + 5);
	if (r->has_accepted)
	{
		px_ballot_set(&r->accepted, strtoi64(PQgetvalue(res, 0, first + 5), NULL, 10),
					  PQgetvalue(res, 0, first + 6));
		r->value.id = CopyField(res, first + 3);
		r->value.data = CopyField(res, first + 4);
	}
	else
		r->accepted.number = -1;
	r->decided = strcmp(PQgetvalue(res, 0, first + 7), "t") == 0;
	r->max_round = strtoi64(PQgetvalue(res, 0, first + 8), NULL, 10);
	*config_round = strtoi64(PQgetvalue(res, 0, first + 9), NULL, 10);
	return true;
}

/*
 * FeedPromise gives a phase-1b answer to proposer p.  An acceptor that knows
 * a membership change this proposer does not, and that applies to the
 * round, stops the attempt: the proposer must learn it first, or it could
 * count a majority of a membership that no longer exists.  Returns true
 * when the caller has heard enough.
 */
static bool
FeedPromise(RoundCollector *rc, px_proposer *p, int host, PGresult *res, int first)
{
	px_promise	r;
	int64		config_round;

	if (!ParsePromise(res, first, &r, &config_round))
		return false;
	if (config_round > rc->config_round && config_round < rc->round && !r.decided)
	{
		rc->newer_config = Max(rc->newer_config, config_round);
		return true;
	}
	return px_proposer_on_promise(p, host, &r) != PX_WAIT;
}

/*
 * StandingGranted: did this prepare_response grant our ballot for every
 * round after this one, with nothing accepted above it there?
 */
static bool
StandingGranted(const RoundCollector *rc, PGresult *res)
{
	px_ballot	promised;

	if (strcmp(PQgetvalue(res, 0, PROMISE_COLUMNS), "t") != 0 ||
		strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		return false;
	px_ballot_set(&promised, strtoi64(PQgetvalue(res, 0, 2), NULL, 10),
				  PQgetvalue(res, 0, 1));
	return px_ballot_cmp(&promised, &rc->p->ballot) == 0 &&
		strtoi64(PQgetvalue(res, 0, 8), NULL, 10) <= rc->round;
}

/* OnPromise feeds one phase-1b answer to the core. */
static bool
OnPromise(void *arg, int host, PGresult *res, const char *error)
{
	RoundCollector *rc = (RoundCollector *) arg;
	bool		enough;

	if (res == NULL || PQntuples(res) != 1 ||
		PQnfields(res) != PROMISE_COLUMNS + (rc->ask_standing ? 1 : 0))
		return false;			/* a failure is no refusal: wait for others */
	if (rc->ask_standing && StandingGranted(rc, res))
		rc->grants++;
	enough = FeedPromise(rc, rc->p, host, res, 0);
	if (rc->newer_config < 0)
		rc->status = px_proposer_status(rc->p);
	return enough;
}

/*
 * OnAccepted feeds one phase-2b answer to the core, and the promise for the
 * next round that came with it to the next round's proposer.
 */
static bool
OnAccepted(void *arg, int host, PGresult *res, const char *error)
{
	RoundCollector *rc = (RoundCollector *) arg;
	px_accepted r;

	if (res == NULL || PQntuples(res) != 1 ||
		PQnfields(res) != ACCEPT_COLUMNS + PROMISE_COLUMNS)
		return false;
	memset(&r, 0, sizeof(r));
	r.accepted = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	px_ballot_set(&r.promised_ballot, strtoi64(PQgetvalue(res, 0, 1), NULL, 10),
				  PQgetvalue(res, 0, 2));
	r.decided = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	if (r.decided)
	{
		r.value.id = CopyField(res, 4);
		r.value.data = CopyField(res, 5);
		px_ballot_set(&r.chosen_ballot, strtoi64(PQgetvalue(res, 0, 6), NULL, 10),
					  PQgetvalue(res, 0, 7));
	}
	if (rc->next != NULL)
	{
		int64		saved = rc->round;

		/* the promise is for round + 1: a membership change at round counts */
		rc->round = saved + 1;
		(void) FeedPromise(rc, rc->next, host, res, ACCEPT_COLUMNS);
		rc->round = saved;
		rc->newer_config = -1;	/* only the next round is affected: drop it */
	}
	rc->status = px_proposer_on_accepted(rc->p, host, &r);
	return rc->status != PX_WAIT;
}

/*
 * OnLearned counts learners that recorded the chosen value.  A membership
 * change waits for a majority, which the next change relies on; a round
 * learned on purpose waits for this node's own learner.
 */
static bool
OnLearned(void *arg, int host, PGresult *res, const char *error)
{
	LearnCollector *lc = (LearnCollector *) arg;

	if (res != NULL)
		lc->acks++;
	if (host == lc->local)
		lc->local_done = true;
	return lc->acks >= lc->needed && (lc->local < 0 || lc->local_done);
}

/* Backoff sleeps a random time that grows with consecutive preemptions. */
static void
Backoff(int conflicts)
{
	int64		us = px_backoff_us(conflicts, pg_prng_uint64(&pg_global_prng_state),
								   BACKOFF_BASE_US, BACKOFF_MAX_US);

	if (us > 0)
		pg_usleep(us);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Retry starts a new attempt above every ballot seen, plus a random amount:
 * competitors that retry after the same preemption would otherwise pick the
 * same number, and the tie would always go to the same proposer id.
 */
static void
Retry(px_proposer *p)
{
	px_proposer_retry(p);
	p->ballot.number += (int64) pg_prng_uint64_range(&pg_global_prng_state, 0,
													 FIRST_BALLOT_RANGE - 1);
}

/*
 * Unreachable handles a phase in which too few members answered: a
 * connection that just broke (a peer restarted, or was dropped as stuck) is
 * only retried after a short delay, so the phase is tried again twice,
 * after that delay, before the call fails.
 */
static void
Unreachable(const char *group_id, int64 round, int nhosts, const FanoutStats *stats,
			int attempts)
{
	if (attempts >= UNREACHABLE_ATTEMPTS)
		NoMajority(group_id, round, nhosts, stats);
	pg_usleep(UNREACHABLE_DELAY_MS * 1000L);
	CHECK_FOR_INTERRUPTS();
}

/* NoMajority reports that too few members answered to decide anything. */
static void
NoMajority(const char *group_id, int64 round, int nhosts, const FanoutStats *stats)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not reach a majority of paxos group \"%s\"", group_id),
			 errdetail("In round " INT64_FORMAT ", %d of %d members answered; a majority is %d.%s%s",
					   round, stats->answered, nhosts, nhosts / 2 + 1,
					   stats->first_error ? " First failure: " : "",
					   stats->first_error ? stats->first_error : ""),
			 errhint("Check that a majority of the group's nodes are running and reachable (pg_paxos.rpc_timeout is %d ms).",
					 PaxosRpcTimeoutMs)));
}

/* CarryString copies a string into ProposerContext (made on first use). */
static char *
CarryString(const char *s)
{
	if (ProposerContext == NULL)
		ProposerContext = AllocSetContextCreate(TopMemoryContext, "pg_paxos proposer",
												ALLOCSET_SMALL_SIZES);
	return s ? MemoryContextStrdup(ProposerContext, s) : NULL;
}

/*
 * CarryNext keeps a round prepared ahead, with the strings its proposer
 * points to copied, for the next call.
 */
static void
CarryNext(const char *group_id, int64 round, int64 config_round,
		  const px_proposer *next)
{
	carry.has_next = true;
	carry.next_group = CarryString(group_id);
	carry.next_round = round;
	carry.next_config = config_round;
	carry.next = *next;
	carry.next.proposal.id = CarryString(next->proposal.id);
	carry.next.proposal.data = CarryString(next->proposal.data);
}

/* CarryLearn remembers a round chosen under our ballot, to tell learners. */
static void
CarryLearn(const char *group_id, int64 round, int64 number)
{
	carry.has_learn = true;
	carry.learn_group = CarryString(group_id);
	carry.learn_round = round;
	carry.learn_number = number;
	carry.learn_proposer = NULL;
	carry.learn_peers = NIL;
}

/*
 * CarryLearnValue is CarryLearn for a process that learned the round
 * itself (PaxosLearnInProcess): the value and the peers are kept too, so
 * that PaxosFlushCarriedLearn can tell them if no next accept does.
 */
static void
CarryLearnValue(const char *group_id, int64 round, const px_ballot *ballot,
				px_value value, PeerConnection **peers, int npeers)
{
	MemoryContext old;
	int			i;

	CarryLearn(group_id, round, ballot->number);
	carry.learn_proposer = CarryString(ballot->proposer);
	carry.learn_value.id = CarryString(value.id);
	carry.learn_value.data = CarryString(value.data);
	old = MemoryContextSwitchTo(ProposerContext);
	for (i = 0; i < npeers; i++)
		carry.learn_peers = lappend(carry.learn_peers, pstrdup(peers[i]->connstr));
	MemoryContextSwitchTo(old);
}

/*
 * PaxosFlushCarriedLearn hands the round this process learned and carries
 * for its next accept to the peers' deferred learn requests (sent before
 * their next request, or by FanoutFlushDeferred): the batcher calls it
 * when it has nothing more to append.
 */
void
PaxosFlushCarriedLearn(void)
{
	char		round_str[32];
	char		number_str[32];
	const char *params[6];
	ListCell   *lc;

	if (!carry.has_learn || carry.learn_proposer == NULL)
		return;
	carry.has_learn = false;
	snprintf(round_str, sizeof(round_str), INT64_FORMAT, carry.learn_round);
	snprintf(number_str, sizeof(number_str), INT64_FORMAT, carry.learn_number);
	params[0] = carry.learn_proposer;
	params[1] = carry.learn_group;
	params[2] = round_str;
	params[3] = number_str;
	params[4] = carry.learn_value.id;
	params[5] = carry.learn_value.data;
	foreach(lc, carry.learn_peers)
		PeerDeferLearn(PeerGet((char *) lfirst(lc)), params);
}

/*
 * Whether this process learns the rounds it got chosen in its own
 * transaction instead of through its node's acceptor (the batcher: it
 * commits right after, and certifies in its next transaction).
 */
bool		PaxosLearnInProcess = false;

/* Whether this process's phase 1 asks for standing promises (the batcher). */
bool		PaxosAskStanding = false;

/*
 * LearnHere records a chosen value in this node's log, in the current
 * transaction, which need not wait for its WAL flush: learning can always
 * be redone (as paxos_confirm_consensus does for an ordinary entry).
 */
static void
LearnHere(const char *group_id, int64 round, const px_ballot *ballot, px_value value)
{
	GroupInfo	group;

	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	if (round >= group.compacted_below)
		RoundStoreLearn(group_id, round, ballot, value);
	SPI_finish();
}

/* LocalHostIndex is the position of own among a round's hosts, or -1. */
static int
LocalHostIndex(List *hosts, const char *own)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, hosts)
	{
		if (strcmp((char *) lfirst(lc), own) == 0)
			return i;
		i++;
	}
	return -1;
}

/*
 * PaxosPreparedRound is the round this backend prepared ahead in a group
 * (where its next append should go), or -1.
 */
int64
PaxosPreparedRound(const char *group_id)
{
	if (carry.has_standing && strcmp(carry.standing_group, group_id) == 0)
		return carry.standing_next;
	if (carry.has_next && strcmp(carry.next_group, group_id) == 0)
		return carry.next_round;
	return -1;
}

/*
 * PaxosSelfPeer is the connection from this backend to its own node's
 * acceptor, through the node's own connection string: how a backend has
 * work done in a transaction of its own.
 */
PeerConnection *
PaxosSelfPeer(const char *group_id)
{
	GroupInfo	group;
	PeerConnection *self;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	self = PeerGet(group.own_connection_string);
	SPI_finish();
	return self;
}

/* PaxosPeersFor maps connection strings to cached peer connections. */
PeerConnection **
PaxosPeersFor(List *connstrs, int *npeers)
{
	PeerConnection **peers = palloc(sizeof(PeerConnection *) * Max(1, list_length(connstrs)));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, connstrs)
		peers[i++] = PeerGet((char *) lfirst(lc));
	*npeers = i;
	return peers;
}

/*
 * PaxosRunRound runs Paxos on one round until a value is chosen there, and
 * says which.  value_id/value is what this proposer would like chosen; a
 * NULL value_id proposes a no-op, which is how a round is learned.
 * priority is how many rounds in a row this proposer has lost to others:
 * each lost round lifts its first ballot above those of fresher proposers,
 * so that a node that keeps losing wins soon (no starvation).  Raises an
 * error when no majority answers, or after pg_paxos.paxos_timeout.
 */
void
PaxosRunRound(const char *group_id, int64 round, const char *value_id,
			  const char *value, int priority, PaxosOutcome *outcome)
{
	MemoryContext outer = CurrentMemoryContext;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   PaxosTimeoutMs);
	const char *proposer_id = BackendProposerId();
	px_acceptor_state local;
	GroupInfo	group;
	List	   *hosts;
	char	   *own_connstr;
	px_proposer p;
	px_proposer next;
	px_value	own;
	int			conflicts = 0;
	int			unreachable = 0;
	int64		number;
	int			npeers;
	PeerConnection **peers;
	char		round_str[32];
	char		number_str[32];
	char		learned_round_str[32];
	char		learned_number_str[32];
	const char *params[9];
	RoundCollector rc;
	FanoutStats stats;
	LearnCollector lcol;
	bool		skip_phase1;
	bool		ask_standing = PaxosAskStanding && value_id != NULL;
	bool		covered = false;	/* a standing promise covers the ballot */

	own.id = value_id ? value_id : psprintf(PAXOS_INTERNAL_PREFIX "noop:%016llx",
											(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	own.data = value_id ? value : NULL;
	memset(outcome, 0, sizeof(*outcome));
	outcome->max_round = -1;

	/*
	 * A random first ballot number, so that no proposer wins every tie by
	 * its id, lifted by the rounds it lost in a row.
	 */
	number = (int64) Min(priority, 1000000) * FIRST_BALLOT_RANGE +
		(int64) pg_prng_uint64_range(&pg_global_prng_state, 0, FIRST_BALLOT_RANGE - 1);

restart:
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	PaxosCheckNotCompacted(&group, round);
	if (RoundStoreLoad(group_id, round, false, &local) && local.decided)
	{
		MemoryContextSwitchTo(outer);
		outcome->value_id = local.value.id ? pstrdup(local.value.id) : NULL;
		outcome->value = local.value.data ? pstrdup(local.value.data) : NULL;
		outcome->ballot = local.accepted;
		outcome->value_changed = !px_value_equal(local.value, own);
		SPI_finish();
		return;
	}
	hosts = PaxosStringListCopy(GroupHostsForRound(group_id, round), outer);
	own_connstr = MemoryContextStrdup(outer, group.own_connection_string);
	SPI_finish();

	if (hosts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("paxos group \"%s\" has no members in round " INT64_FORMAT,
						group_id, round)));
	peers = PaxosPeersFor(hosts, &npeers);
	if (px_proposer_start(&p, npeers, proposer_id, number, own) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("paxos group \"%s\" has too many members (%d, at most %d)",
						group_id, npeers, PX_MAX_HOSTS)));

	/* a round prepared ahead by the previous call: start at phase 2a */
	skip_phase1 = carry.has_next && carry.next_round == round &&
		carry.next_config == group.config_round && carry.next.n_hosts == npeers &&
		strcmp(carry.next_group, group_id) == 0 &&
		px_proposer_status(&carry.next) == PX_PROMISED &&
		!carry.next.adopted;
	/* a standing promise not granted last time: ask again now and then */
	if (skip_phase1 && ask_standing && !carry.has_standing &&
		strcmp(carry.standing_group, group_id) == 0 && round >= carry.standing_retry)
		skip_phase1 = false;
	if (skip_phase1)
	{
		p = carry.next;
		p.own = own;
		p.proposal = own;
	}
	carry.has_next = false;

	/*
	 * Under this process's standing promise: phase 2a at once, with the
	 * ballot a majority promised for every round from before this one.
	 * Taken here, it is kept again only if this round ends chosen under it.
	 */
	if (carry.has_standing && strcmp(carry.standing_group, group_id) == 0)
	{
		covered = ask_standing && round >= carry.standing_next &&
			carry.standing_config == group.config_round &&
			carry.standing_hosts == npeers;
		carry.has_standing = false;
		if (covered)
		{
			(void) px_proposer_start(&p, npeers, proposer_id, carry.standing_number, own);
			skip_phase1 = true;
		}
	}

	/*
	 * A round chosen by the previous call is made known with this one; a
	 * standing promise's phase 1 carries none (it waits for no row): the
	 * peers are told just before it.
	 */
	params[4] = params[5] = NULL;
	if (carry.has_learn && (strcmp(carry.learn_group, group_id) != 0 ||
							(ask_standing && !skip_phase1)))
		PaxosFlushCarriedLearn();
	if (carry.has_learn && strcmp(carry.learn_group, group_id) == 0)
	{
		snprintf(learned_round_str, sizeof(learned_round_str), INT64_FORMAT, carry.learn_round);
		snprintf(learned_number_str, sizeof(learned_number_str), INT64_FORMAT, carry.learn_number);
		params[4] = learned_round_str;
		params[5] = learned_number_str;
	}
	carry.has_learn = false;
	if (ProposerContext != NULL)
		MemoryContextReset(ProposerContext);

	snprintf(round_str, sizeof(round_str), INT64_FORMAT, round);
	params[0] = proposer_id;
	params[1] = group_id;
	params[2] = round_str;
	params[3] = number_str;
	rc.round = round;
	rc.config_round = group.config_round;
	rc.ask_standing = ask_standing;
	rc.grants = 0;

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (GetCurrentTimestamp() > deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("no value was chosen in round " INT64_FORMAT " of paxos group \"%s\" within %d ms",
							round, group_id, PaxosTimeoutMs),
					 errhint("Other proposers kept preempting this one; retry, or raise pg_paxos.paxos_timeout.")));
		snprintf(number_str, sizeof(number_str), INT64_FORMAT, p.ballot.number);
		rc.p = &p;
		rc.next = NULL;
		rc.newer_config = -1;

		if (!skip_phase1)
		{
			/* phase 1a: prepare */
			rc.status = PX_WAIT;
			rc.grants = 0;
			FanoutCall(peers, npeers, ask_standing ? RPC_STANDING : RPC_PREPARE, params,
					   ask_standing ? 4 : 6, PaxosRpcTimeoutMs, OnPromise, &rc, &stats);
			covered = ask_standing && rc.grants >= p.quorum;
			if (ask_standing && !covered)
			{
				strlcpy(carry.standing_group, group_id, sizeof(carry.standing_group));
				carry.standing_retry = round + STANDING_RETRY_ROUNDS;
			}
			params[4] = params[5] = NULL;	/* learned: sent once */
			outcome->max_round = Max(outcome->max_round, p.max_round);
			if (rc.newer_config >= 0)
			{
				/* learn the newer membership, then start over with it */
				PaxosLearnLog(group_id, -1, rc.newer_config);
				number = p.highest_number + 1;
				goto restart;
			}
			if (rc.status == PX_CHOSEN)
				break;
			if (rc.status == PX_WAIT && stats.answered < p.quorum)
			{
				Unreachable(group_id, round, npeers, &stats, ++unreachable);
				Retry(&p);
				continue;
			}
			/* refused by some and unreachable for others: retry higher */
			if (rc.status == PX_PREEMPTED || rc.status == PX_WAIT)
			{
				Backoff(++conflicts);
				Retry(&p);
				continue;
			}
		}
		skip_phase1 = false;
		px_proposer_begin_accept(&p);

		/* phase 2a: accept, with phase 1a of the next round for an append */
		px_proposer_start(&next, npeers, proposer_id, p.ballot.number,
						  (px_value) {NULL, NULL});
		rc.next = value_id != NULL && !covered ? &next : NULL;
		params[6] = p.proposal.id;
		params[7] = p.proposal.data;
		params[8] = rc.next != NULL ? "true" : "false";
		{
			/* accept takes learned_* after the value: reorder the params */
			const char *accept_params[9] = {params[0], params[1], params[2], params[3],
			params[6], params[7], params[4], params[5], params[8]};

			rc.status = PX_WAIT;
			FanoutCall(peers, npeers, RPC_ACCEPT, accept_params, 9,
					   PaxosRpcTimeoutFor(p.proposal.data),
					   OnAccepted, &rc, &stats);
		}
		params[4] = params[5] = NULL;
		if (rc.status == PX_CHOSEN)
			break;
		if (rc.status == PX_WAIT && stats.answered < p.quorum)
		{
			Unreachable(group_id, round, npeers, &stats, ++unreachable);
			Retry(&p);
			continue;
		}
		Backoff(++conflicts);
		Retry(&p);
	}

	outcome->value_id = p.proposal.id ? pstrdup(p.proposal.id) : NULL;
	outcome->value = p.proposal.data ? pstrdup(p.proposal.data) : NULL;
	outcome->ballot = p.chosen_ballot;
	outcome->value_changed = px_proposer_value_changed(&p);

	/* never a second value under the ballot in a round it was sent to */
	if (covered && px_ballot_cmp(&p.chosen_ballot, &p.ballot) == 0)
	{
		carry.has_standing = true;
		strlcpy(carry.standing_group, group_id, sizeof(carry.standing_group));
		carry.standing_number = p.ballot.number;
		carry.standing_next = round + 1;
		carry.standing_config = group.config_round;
		carry.standing_hosts = npeers;
	}

	if (rc.next != NULL && px_proposer_status(&next) == PX_PROMISED)
		CarryNext(group_id, round + 1, group.config_round, &next);

	if (MembershipIsChange(p.proposal) || value_id == NULL ||
		strncmp(value_id, PAXOS_TXN_PREFIX, strlen(PAXOS_TXN_PREFIX)) == 0 ||
		strcmp(p.chosen_ballot.proposer, proposer_id) != 0)
	{
		/*
		 * Learn now: tell every member.  A membership change needs a
		 * majority; a learner (no value of its own), and a transaction,
		 * whose certification comes next, wait for this node.
		 */
		snprintf(number_str, sizeof(number_str), INT64_FORMAT, p.chosen_ballot.number);
		params[0] = p.chosen_ballot.proposer;
		params[4] = p.proposal.id;
		params[5] = p.proposal.data;
		lcol.needed = MembershipIsChange(p.proposal) ? p.quorum : 0;
		lcol.acks = 0;
		lcol.local = value_id == NULL ||
			strncmp(value_id, PAXOS_TXN_PREFIX, strlen(PAXOS_TXN_PREFIX)) == 0
			? LocalHostIndex(hosts, own_connstr) : -1;
		lcol.local_done = false;
		if (PaxosLearnInProcess && value_id != NULL && lcol.needed == 0 && lcol.local >= 0 &&
			!px_proposer_value_changed(&p) &&
			strcmp(p.chosen_ballot.proposer, proposer_id) == 0)
		{
			/*
			 * Our own value, chosen under our ballot: this node learns it
			 * here, and the caller (the batcher) commits right after,
			 * asking its acceptor nothing more in this transaction (which
			 * now holds the round's row: the locking rule of
			 * docs/consensus.md).  A round that ends otherwise (another
			 * value, a learner's no-op, another proposer's ballot) is
			 * learned through the acceptor, as below, since the caller
			 * goes on with more rounds.  The others learn it with the next
			 * accept, which carries it (an acceptor that accepted it under
			 * that ballot learns it), or, when nothing follows, when the
			 * batcher is idle (PaxosFlushCarriedLearn).
			 */
			PeerConnection **others = palloc(sizeof(PeerConnection *) * npeers);
			int			nothers = 0;
			int			i;

			for (i = 0; i < npeers; i++)
				if (i != lcol.local)
					others[nothers++] = peers[i];
			LearnHere(group_id, round, &p.chosen_ballot, p.proposal);
			CarryLearnValue(group_id, round, &p.chosen_ballot, p.proposal, others, nothers);
		}
		else
		{
			FanoutCall(peers, npeers, RPC_CONFIRM, params, 6,
					   PaxosRpcTimeoutFor(p.proposal.data),
					   lcol.needed > 0 || lcol.local >= 0 ? OnLearned : NULL, &lcol, &stats);
			if (lcol.acks < lcol.needed)
				NoMajority(group_id, round, npeers, &stats);
		}
	}
	else
		CarryLearn(group_id, round, p.chosen_ballot.number);
}
