/*
 * proposer.c
 *    Single-decree Paxos for one round of a group's log, as the pg_paxos
 *    README describes it: phase 1a (prepare) and phase 2a (accept) sent to
 *    every member at once, the decisions taken by the core's px_proposer,
 *    retries with a higher ballot after a randomized backoff, and the chosen
 *    value sent to every learner.
 *
 * The proposer keeps no state between calls: everything durable is in the
 * acceptors.  A round this node already knows as decided is answered
 * locally, without any network.
 */
#include "pg_paxos.h"

#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Backoff after a preemption: random, from 0.5 ms doubling up to 20 ms. */
#define BACKOFF_BASE_US 500
#define BACKOFF_MAX_US 20000

typedef struct RoundCollector
{
	px_proposer *p;
	px_status	status;
	int64		round;
	int64		config_round;	/* membership version this proposer uses */
	int64		newer_config;	/* newer membership reported, or -1 */
} RoundCollector;

typedef struct LearnCollector
{
	int			needed;			/* answers to wait for */
	int			acks;
} LearnCollector;

static char *CopyValue(PGresult *res, int col);
static bool OnPromise(void *arg, int host, PGresult *res, const char *error);
static bool OnAccepted(void *arg, int host, PGresult *res, const char *error);
static bool OnLearned(void *arg, int host, PGresult *res, const char *error);
static void Backoff(int conflicts);
static void NoMajority(const char *group_id, int64 round, int nhosts,
					   const FanoutStats *stats) pg_attribute_noreturn();

/* CopyValue returns a palloc'd copy of a result field, NULL for SQL NULL. */
static char *
CopyValue(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? NULL : pstrdup(PQgetvalue(res, 0, col));
}

/*
 * OnPromise feeds one phase-1b answer to the core.  An acceptor that knows
 * a membership change this proposer does not, and that applies to this
 * round, stops the attempt: the proposer must learn it first, or it could
 * count a majority of a membership that no longer exists.
 */
static bool
OnPromise(void *arg, int host, PGresult *res, const char *error)
{
	RoundCollector *rc = (RoundCollector *) arg;
	px_promise	r;
	int64		config_round;

	if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 10)
		return false;			/* a failure is no refusal: wait for others */

	memset(&r, 0, sizeof(r));
	r.promised = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	px_ballot_set(&r.promised_ballot, strtoi64(PQgetvalue(res, 0, 2), NULL, 10),
				  PQgetvalue(res, 0, 1));
	r.has_accepted = !PQgetisnull(res, 0, 5);
	if (r.has_accepted)
	{
		px_ballot_set(&r.accepted, strtoi64(PQgetvalue(res, 0, 5), NULL, 10),
					  PQgetvalue(res, 0, 6));
		r.value.id = CopyValue(res, 3);
		r.value.data = CopyValue(res, 4);
	}
	else
		r.accepted.number = -1;
	r.decided = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	r.max_round = strtoi64(PQgetvalue(res, 0, 8), NULL, 10);
	config_round = strtoi64(PQgetvalue(res, 0, 9), NULL, 10);

	if (config_round > rc->config_round && config_round < rc->round && !r.decided)
	{
		rc->newer_config = Max(rc->newer_config, config_round);
		return true;
	}
	rc->status = px_proposer_on_promise(rc->p, host, &r);
	return rc->status != PX_WAIT;
}

/* OnAccepted feeds one phase-2b answer to the core. */
static bool
OnAccepted(void *arg, int host, PGresult *res, const char *error)
{
	RoundCollector *rc = (RoundCollector *) arg;
	px_accepted r;

	if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 8)
		return false;
	memset(&r, 0, sizeof(r));
	r.accepted = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	px_ballot_set(&r.promised_ballot, strtoi64(PQgetvalue(res, 0, 1), NULL, 10),
				  PQgetvalue(res, 0, 2));
	r.decided = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	if (r.decided)
	{
		r.value.id = CopyValue(res, 4);
		r.value.data = CopyValue(res, 5);
		px_ballot_set(&r.chosen_ballot, strtoi64(PQgetvalue(res, 0, 6), NULL, 10),
					  PQgetvalue(res, 0, 7));
	}
	rc->status = px_proposer_on_accepted(rc->p, host, &r);
	return rc->status != PX_WAIT;
}

/*
 * OnLearned counts learners that recorded the chosen value.  An ordinary
 * entry waits for none: learners that miss it catch up from the acceptors.
 * A membership change waits for a majority, which the next change relies on.
 */
static bool
OnLearned(void *arg, int host, PGresult *res, const char *error)
{
	LearnCollector *lc = (LearnCollector *) arg;

	if (res != NULL)
		lc->acks++;
	return lc->acks >= lc->needed;
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

/* PaxosLocalHostIndex is the position of this node among connstrs, or -1. */
int
PaxosLocalHostIndex(List *connstrs, const char *own)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, connstrs)
	{
		if (strcmp((char *) lfirst(lc), own) == 0)
			return i;
		i++;
	}
	return -1;
}

/*
 * PaxosRunRound runs Paxos on one round until a value is chosen there, and
 * says which.  value_id/value is what this proposer would like chosen; a
 * NULL value_id proposes a no-op, which is how a round is learned.  Raises
 * an error when no majority answers, or after pg_paxos.paxos_timeout.
 */
void
PaxosRunRound(const char *group_id, int64 round, const char *proposer_id,
			  const char *value_id, const char *value, PaxosOutcome *outcome)
{
	MemoryContext outer = CurrentMemoryContext;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   PaxosTimeoutMs);
	px_acceptor_state local;
	GroupInfo	group;
	List	   *hosts;
	px_proposer p;
	px_value	own;
	int			conflicts = 0;
	int64		number = 0;

	own.id = value_id ? value_id : psprintf(PAXOS_INTERNAL_PREFIX "noop:%016llx",
											(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	own.data = value_id ? value : NULL;
	memset(outcome, 0, sizeof(*outcome));
	outcome->max_round = -1;

restart:
	SPI_connect();
	GroupLoadOrError(group_id, &group);
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
	MemoryContextSwitchTo(outer);
	group.own_connection_string = pstrdup(group.own_connection_string);
	hosts = PaxosStringListCopy(GroupHostsForRound(group_id, round));
	SPI_finish();

	if (hosts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("paxos group \"%s\" has no members in round " INT64_FORMAT,
						group_id, round)));

	{
		int			npeers;
		PeerConnection **peers = PaxosPeersFor(hosts, &npeers);
		char		round_str[32];
		char		number_str[32];
		const char *params[6];
		RoundCollector rc;
		FanoutStats stats;
		LearnCollector lcol;
		px_ballot	chosen_ballot;

		if (px_proposer_start(&p, npeers, proposer_id, number, own) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("paxos group \"%s\" has too many members (%d, at most %d)",
							group_id, npeers, PX_MAX_HOSTS)));
		snprintf(round_str, sizeof(round_str), INT64_FORMAT, round);
		params[0] = proposer_id;
		params[1] = group_id;
		params[2] = round_str;
		params[3] = number_str;

		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			if (GetCurrentTimestamp() > deadline)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("no value was chosen in round " INT64_FORMAT " of paxos group \"%s\" within %d ms",
								round, group_id, PaxosTimeoutMs),
						 errhint("Other proposers kept preempting this one; retry, or raise pg_paxos.paxos_timeout.")));

			/* phase 1a: prepare */
			snprintf(number_str, sizeof(number_str), INT64_FORMAT, p.ballot.number);
			rc.p = &p;
			rc.status = PX_WAIT;
			rc.round = round;
			rc.config_round = group.config_round;
			rc.newer_config = -1;
			FanoutCall(peers, npeers, RPC_PREPARE, params, 4, PaxosRpcTimeoutMs,
					   OnPromise, &rc, &stats);
			outcome->max_round = Max(outcome->max_round, p.max_round);
			if (rc.newer_config >= 0)
			{
				/* learn the newer membership, then start over with it */
				PaxosLearnLog(group_id, rc.newer_config);
				number = p.highest_number + 1;
				goto restart;
			}
			if (rc.status == PX_CHOSEN)
				break;
			if (rc.status == PX_WAIT)
				NoMajority(group_id, round, npeers, &stats);
			if (rc.status == PX_PREEMPTED)
			{
				Backoff(++conflicts);
				px_proposer_retry(&p);
				continue;
			}

			/* phase 2a: accept */
			px_proposer_begin_accept(&p);
			params[4] = p.proposal.id;
			params[5] = p.proposal.data;
			rc.status = PX_WAIT;
			FanoutCall(peers, npeers, RPC_ACCEPT, params, 6, PaxosRpcTimeoutMs,
					   OnAccepted, &rc, &stats);
			if (rc.status == PX_CHOSEN)
				break;
			if (rc.status == PX_WAIT)
				NoMajority(group_id, round, npeers, &stats);
			Backoff(++conflicts);
			px_proposer_retry(&p);
		}

		chosen_ballot = p.chosen_ballot;

		/* learn: tell every member; wait only when membership changes */
		snprintf(number_str, sizeof(number_str), INT64_FORMAT, chosen_ballot.number);
		params[0] = chosen_ballot.proposer;
		params[4] = p.proposal.id;
		params[5] = p.proposal.data;
		lcol.needed = MembershipIsChange(p.proposal) ? p.quorum : 0;
		lcol.acks = 0;
		FanoutCall(peers, npeers, RPC_CONFIRM, params, 6, PaxosRpcTimeoutMs,
				   lcol.needed > 0 ? OnLearned : NULL, &lcol, &stats);
		if (lcol.acks < lcol.needed)
			NoMajority(group_id, round, npeers, &stats);

		outcome->value_id = p.proposal.id ? pstrdup(p.proposal.id) : NULL;
		outcome->value = p.proposal.data ? pstrdup(p.proposal.data) : NULL;
		outcome->ballot = chosen_ballot;
		outcome->value_changed = px_proposer_value_changed(&p);
	}
}
