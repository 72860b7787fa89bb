/*
 * learner.c
 *    How a node comes to know the values chosen in rounds it missed: copy
 *    the entries its peers know as chosen (one request for up to a thousand
 *    rounds), and run Paxos with a no-op for rounds nobody reports as
 *    chosen, where phase 1 finds any value that may have been chosen.
 *
 * Rounds a node's peers have compacted cannot be learned from them: the
 * node needs a snapshot (snapshot.c), and learning says so.
 *
 * Locking rule: a transaction that wrote round rows must never wait on an
 * RPC to its own node's acceptor, which would wait for those row locks until
 * the RPC timed out.  So a node that is a member of the rounds it learns has
 * them written by its own acceptor, in the acceptor's transaction: copied
 * entries through paxos_copy_decided called over libpq to itself, no-op
 * rounds through the learn requests the proposer sends.  Only a node that
 * is not a member (one that is joining) writes what it learns in the
 * caller's transaction: nobody sends it requests for those rounds.
 */
#include "pg_paxos.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(paxos_learn_log);
PG_FUNCTION_INFO_V1(paxos_copy_decided);

/* Rounds fetched from peers per request during catch-up. */
#define LEARN_BATCH 1000

typedef struct DecidedCollector
{
	const char *group_id;
	int			answers;
	int			needed;
	int64		learned;
} DecidedCollector;

typedef struct CountCollector
{
	int64		count;
	bool		answered;
} CountCollector;

static bool OnDecidedRounds(void *arg, int host, PGresult *res, const char *error);
static bool OnCount(void *arg, int host, PGresult *res, const char *error);
static int64 CopyDecided(const char *group_id, List *peers_connstrs,
						 int64 from_round, int64 to_round);
static int64 CopyDecidedThroughSelf(const char *group_id, PeerConnection *self,
									int64 from_round, int64 to_round);

/*
 * OnDecidedRounds records the chosen entries a peer sent.  Any entry a peer
 * knows as chosen is chosen: learners only record values after a majority
 * accepted them.
 */
static bool
OnDecidedRounds(void *arg, int host, PGresult *res, const char *error)
{
	DecidedCollector *dc = (DecidedCollector *) arg;
	int			i;

	if (res == NULL)
		return false;
	SPI_connect();
	for (i = 0; i < PQntuples(res); i++)
	{
		px_ballot	ballot;
		px_value	value;

		px_ballot_set(&ballot, strtoi64(PQgetvalue(res, i, 1), NULL, 10),
					  PQgetvalue(res, i, 2));
		value.id = PQgetvalue(res, i, 3);
		value.data = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
		if (RoundStoreLearn(dc->group_id, strtoi64(PQgetvalue(res, i, 0), NULL, 10),
							&ballot, value))
			dc->learned++;
	}
	SPI_finish();
	return ++dc->answers >= dc->needed;
}

/*
 * CopyDecided asks peers for the entries they know as chosen in [from, to]
 * and records them in the current transaction; returns how many were new.
 * One answer is enough to make progress; it waits for a majority's worth
 * (with this node) when they answer in time.
 */
static int64
CopyDecided(const char *group_id, List *peer_connstrs, int64 from_round,
			int64 to_round)
{
	PeerConnection **peers;
	int			npeers;
	char		from_str[32];
	char		to_str[32];
	const char *params[3];
	DecidedCollector dc;
	FanoutStats stats;

	if (peer_connstrs == NIL)
		return 0;
	peers = PaxosPeersFor(peer_connstrs, &npeers);
	snprintf(from_str, sizeof(from_str), INT64_FORMAT, from_round);
	snprintf(to_str, sizeof(to_str), INT64_FORMAT, to_round);
	params[0] = group_id;
	params[1] = from_str;
	params[2] = to_str;
	dc.group_id = group_id;
	dc.answers = 0;
	dc.needed = Max(1, (npeers + 1) / 2);
	dc.learned = 0;
	FanoutCall(peers, npeers, RPC_DECIDED_ROUNDS, params, 3, PaxosRpcTimeoutMs,
			   OnDecidedRounds, &dc, &stats);
	return dc.learned;
}

/* OnCount reads the bigint answer of paxos_copy_decided. */
static bool
OnCount(void *arg, int host, PGresult *res, const char *error)
{
	CountCollector *cc = (CountCollector *) arg;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	cc->count = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	cc->answered = true;
	return true;
}

/*
 * CopyDecidedThroughSelf has this node's own acceptor copy chosen entries
 * from its peers, in a transaction of its own (see the locking rule).
 */
static int64
CopyDecidedThroughSelf(const char *group_id, PeerConnection *self, int64 from_round,
					   int64 to_round)
{
	char		from_str[32];
	char		to_str[32];
	const char *params[3];
	CountCollector cc = {0, false};
	FanoutStats stats;

	snprintf(from_str, sizeof(from_str), INT64_FORMAT, from_round);
	snprintf(to_str, sizeof(to_str), INT64_FORMAT, to_round);
	params[0] = group_id;
	params[1] = from_str;
	params[2] = to_str;
	/* the acceptor itself waits up to one RPC timeout for its peers */
	FanoutCall(&self, 1, RPC_COPY_DECIDED, params, 3,
			   2 * PaxosRpcTimeoutMs + 1000, OnCount, &cc, &stats);
	if (!cc.answered)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not reach this node's own acceptor through its connection string"),
				 errdetail("%s", stats.first_error ? stats.first_error : "no answer")));
	return cc.count;
}

/*
 * PaxosLearnLog makes this node know the chosen value of every round from
 * from_round (-1: the first round not applied here) up to max_round, and
 * returns how many rounds it learned.
 */
int64
PaxosLearnLog(const char *group_id, int64 from_round, int64 max_round)
{
	MemoryContext outer = CurrentMemoryContext;
	int64		learned = 0;
	int64	   *missing = palloc(sizeof(int64) * LEARN_BATCH);
	GroupInfo	group;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	MemoryContextSwitchTo(outer);
	group.own_connection_string = pstrdup(group.own_connection_string);
	SPI_finish();
	if (from_round < 0)
		from_round = group.last_applied_round + 1;

	for (;;)
	{
		List	   *hosts;
		List	   *others = NIL;
		bool		member = false;
		ListCell   *lc;
		int			nmissing;
		int			i;
		int64		last;

		CHECK_FOR_INTERRUPTS();
		SPI_connect();
		nmissing = RoundStoreUndecidedIn(group_id, from_round, max_round,
										 missing, LEARN_BATCH);
		hosts = nmissing > 0 ? PaxosStringListCopy(GroupHostsForRound(group_id, missing[0]), outer) : NIL;
		SPI_finish();
		if (nmissing == 0)
			break;
		last = missing[nmissing - 1];

		foreach(lc, hosts)
		{
			if (strcmp((char *) lfirst(lc), group.own_connection_string) == 0)
				member = true;
			else
				others = lappend(others, lfirst(lc));
		}

		/* copy what peers know as chosen */
		if (member)
			learned += CopyDecidedThroughSelf(group_id, PeerGet(group.own_connection_string),
											  missing[0], last);
		else
			learned += CopyDecided(group_id, others, missing[0], last);

		/* run Paxos for what nobody reported as chosen */
		SPI_connect();
		nmissing = RoundStoreUndecidedIn(group_id, missing[0], last, missing, LEARN_BATCH);
		SPI_finish();
		if (nmissing > 0 && missing[0] < PaxosPeersCompactedBelow(group_id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this node needs round " INT64_FORMAT " of paxos group \"%s\", which its peers have compacted",
							missing[0], group_id),
					 errdetail("Its peers keep the log from round " INT64_FORMAT " on.",
							   PaxosPeersCompactedBelow(group_id)),
					 errhint("The background worker copies a snapshot of the group from a peer; retry once the server log says it has.")));
		for (i = 0; i < nmissing; i++)
		{
			PaxosOutcome outcome;
			px_value	value;

			/* as a learner, the proposer makes the outcome known at once */
			PaxosRunRound(group_id, missing[i], NULL, NULL, 0, &outcome);
			learned++;
			if (member)
				continue;
			value.id = outcome.value_id;
			value.data = outcome.value;
			SPI_connect();
			RoundStoreLearn(group_id, missing[i], &outcome.ballot, value);
			SPI_finish();
		}
		from_round = last + 1;
	}
	pfree(missing);
	return learned;
}

/*
 * PaxosCopyChosen has this node's acceptor record what its peers know as
 * chosen in [from_round, to_round], running Paxos for nothing; returns how
 * many rounds were new here.  For a member that could not reach a majority
 * of the members it knows: a membership change it missed is learned so.
 */
int64
PaxosCopyChosen(const char *group_id, int64 from_round, int64 to_round)
{
	return CopyDecidedThroughSelf(group_id, PaxosSelfPeer(group_id), from_round, to_round);
}

/* paxos_learn_log: see PaxosLearnLog. */
Datum
paxos_learn_log(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		max_round = PaxosInt64Arg(fcinfo, 1, "max_round_num");

	PG_RETURN_INT64(PaxosLearnLog(group_id, -1, max_round));
}

/*
 * paxos_copy_decided (RPC, called by a node on itself): copy from the other
 * members the entries they know as chosen in [from, to]; returns how many
 * were new here.
 */
Datum
paxos_copy_decided(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		from_round = PaxosInt64Arg(fcinfo, 1, "from_round_num");
	int64		to_round = PaxosInt64Arg(fcinfo, 2, "to_round_num");
	MemoryContext outer = CurrentMemoryContext;
	GroupInfo	group;
	char	   *own;
	List	   *hosts;
	List	   *others = NIL;
	ListCell   *lc;

	PaxosCheckRoundNumber(from_round, "from_round_num");
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	own = MemoryContextStrdup(outer, group.own_connection_string);
	hosts = PaxosStringListCopy(GroupHostsForRound(group_id, from_round), outer);
	SPI_finish();
	foreach(lc, hosts)
		if (strcmp((char *) lfirst(lc), own) != 0)
			others = lappend(others, lfirst(lc));

	PG_RETURN_INT64(CopyDecided(group_id, others, from_round, to_round));
}
