/*
 * multi_paxos.c
 *    The Multi-Paxos log of a group, round r being its r-th entry: append a
 *    value, learn rounds this node missed, find the highest round of the
 *    group, and execute the log (the pg_paxos README's SQL functions).
 *
 * Appending tries the next round this node knows of; when another value is
 * chosen there it moves past the highest round any acceptor reported, so a
 * node that was away catches up in one step instead of one round at a time.
 * Learning first copies chosen entries from peers (one request for up to a
 * thousand rounds) and runs Paxos with a no-op only for rounds nobody
 * reports as chosen: phase 1 then finds any value that may have been chosen.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "utils/builtins.h"

/* How often PaxosMaxGroupRound asks when too few members answer. */
#define MAX_ROUND_ATTEMPTS 4		/* the first asks only a majority's worth */
#define MAX_ROUND_RETRY_DELAY_MS 250
#define MAX_ROUND_FIRST_WAIT_MS 50	/* then the other members are asked too */

PG_FUNCTION_INFO_V1(paxos);
PG_FUNCTION_INFO_V1(paxos_append);
PG_FUNCTION_INFO_V1(paxos_max_group_round);
PG_FUNCTION_INFO_V1(paxos_apply_log);
PG_FUNCTION_INFO_V1(paxos_apply_and_append);

typedef struct MaxRoundCollector
{
	int64		max_round;
	int			answers;
	int			quorum;
} MaxRoundCollector;

static bool OnMaxRound(void *arg, int host, PGresult *res, const char *error);
static int64 LocalMaxRound(const char *group_id);

/* LocalMaxRound is the highest round with an accepted value here, or -1. */
static int64
LocalMaxRound(const char *group_id)
{
	GroupInfo	group;
	int64		max_round;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	/* a round only promised (prepared ahead) is still free to append to */
	max_round = RoundStoreMaxRound(group_id, true);
	SPI_finish();
	return max_round;
}

/*
 * PaxosAppendValue gets (value_id, value) chosen in the first round where
 * it can be, and returns that round.
 */
int64
PaxosAppendValue(const char *group_id, const char *value_id, const char *value)
{
	int64		round = PaxosPreparedRound(group_id);
	int			lost = 0;

	/*
	 * Where the previous append prepared the next round, go there; if
	 * someone else took it meanwhile, the round says so and we move on.
	 */
	if (round < 0)
		round = px_next_append_round(LocalMaxRound(group_id), -1);

	for (;;)
	{
		PaxosOutcome outcome;

		PaxosRunRound(group_id, round, value_id, value, lost, &outcome);
		if (!outcome.value_changed)
			return round;
		lost++;
		round = px_next_append_round(round, outcome.max_round);
	}
}

/* OnMaxRound keeps the highest round reported, until a majority answered. */
static bool
OnMaxRound(void *arg, int host, PGresult *res, const char *error)
{
	MaxRoundCollector *mc = (MaxRoundCollector *) arg;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	mc->max_round = Max(mc->max_round, strtoi64(PQgetvalue(res, 0, 0), NULL, 10));
	return ++mc->answers >= mc->quorum;
}

/*
 * PaxosMaxGroupRound asks the current members for their highest round and
 * returns the highest among a majority: it is at least any round chosen
 * before the call started, since every choice involved a majority.
 *
 * Like a proposer's phase (proposer.c), the question is asked again, up to
 * MAX_ROUND_ATTEMPTS times, when too few members answered: with one member
 * silent (crashed, or cut off by a partition) a single slow answer from
 * another would otherwise fail a strong read although a majority is up.
 * If that is not enough, this node's member list may be out of date (a
 * member left, another is down, and this node has not learned the change
 * yet): it copies what the members that answered know as chosen, and asks
 * once more if that changed the membership.
 */
int64
PaxosMaxGroupRound(const char *group_id, bool accepted_only)
{
	GroupInfo	group;
	List	   *hosts;
	PeerConnection **peers;
	int			npeers;
	MaxRoundCollector mc;
	FanoutStats stats;
	const char *params[2];
	MemoryContext outer = CurrentMemoryContext;
	int			attempt;
	List	   *others;
	int			nhosts;
	int64		own_round;
	bool		own_answer;
	ListCell   *lc;
	PaxosLeaderInfo leader;
	bool		relearned = false;

again:
	others = NIL;
	own_answer = false;
	own_round = -1;
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	hosts = GroupHostsForRound(group_id, PG_INT64_MAX);
	nhosts = list_length(hosts);
	foreach(lc, hosts)
	{
		/* this node answers for itself without a round trip */
		if (accepted_only && strcmp((char *) lfirst(lc), group.own_connection_string) == 0)
			own_answer = true;
		else
			others = lappend(others, MemoryContextStrdup(outer, (char *) lfirst(lc)));
	}
	if (own_answer)
		own_round = PaxosLocalMaxAccepted(group_id);
	SPI_finish();

	peers = PaxosPeersFor(others, &npeers);
	/* the leader first: it has accepted every round a majority accepted */
	if (PaxosKnownLeader(group_id, &leader) && !leader.is_self)
	{
		int			i;

		for (i = 1; i < npeers; i++)
			if (strcmp(peers[i]->connstr, leader.connstr) == 0)
			{
				PeerConnection *first = peers[0];

				peers[0] = peers[i];
				peers[i] = first;
				break;
			}
	}
	params[0] = group_id;
	params[1] = accepted_only ? "true" : "false";
	memset(&stats, 0, sizeof(stats));
	for (attempt = 1;; attempt++)
	{
		mc.max_round = own_round;
		mc.answers = own_answer ? 1 : 0;
		mc.quorum = nhosts / 2 + 1;
		if (mc.answers >= mc.quorum)
			break;
		/*
		 * First ask only as many peers as a majority needs (the others
		 * would answer for nothing); all of them if that was not enough.
		 */
		FanoutCall(peers, attempt == 1 ? Min(npeers, mc.quorum - mc.answers) : npeers,
				   RPC_MAX_ROUND, params, 2,
				   attempt == 1 && mc.quorum - mc.answers < npeers
				   ? Min(PaxosRpcTimeoutMs, MAX_ROUND_FIRST_WAIT_MS) : PaxosRpcTimeoutMs,
				   OnMaxRound, &mc, &stats);
		if (mc.answers >= mc.quorum || attempt >= MAX_ROUND_ATTEMPTS)
			break;
		/* a connection that just broke is retried after a short delay */
		if (attempt > 1)
			pg_usleep(MAX_ROUND_RETRY_DELAY_MS * 1000L);
		CHECK_FOR_INTERRUPTS();
	}
	if (mc.answers < mc.quorum && !relearned && mc.answers > (own_answer ? 1 : 0) &&
		mc.max_round > group.last_applied_round)
	{
		int64		config_round = group.config_round;

		relearned = true;
		(void) PaxosCopyChosen(group_id, group.last_applied_round + 1, mc.max_round);
		SPI_connect();
		GroupLoadOrError(group_id, &group);
		SPI_finish();
		if (group.config_round != config_round)
			goto again;
	}
	if (mc.answers < mc.quorum)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not reach a majority of paxos group \"%s\"", group_id),
				 errdetail("%d of %d members answered; a majority is %d.%s%s",
						   mc.answers, nhosts, mc.quorum,
						   stats.first_error ? " First failure: " : "",
						   stats.first_error ? stats.first_error : "")));
	return mc.max_round;
}

/*
 * paxos runs Paxos on one round of a group's log and returns the value
 * chosen there, and whether it differs from proposed_value.  With the
 * default NULL, it only learns the round.
 */
Datum
paxos(PG_FUNCTION_ARGS)
{
	char	   *proposer_id = PaxosTextArg(fcinfo, 0, "current_proposer_id");
	char	   *group_id = PaxosTextArg(fcinfo, 1, "current_group_id");
	int64		round = PaxosInt64Arg(fcinfo, 2, "current_round_num");
	char	   *value = PaxosTextArgOrNull(fcinfo, 3);
	PaxosOutcome outcome;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	PaxosCheckProposerId(proposer_id);
	PaxosCheckRoundNumber(round, "current_round_num");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_paxos: return type must be a row type");

	PaxosRunRound(group_id, round, value ? PaxosUniqueValueId(proposer_id) : NULL,
				  value, 0, &outcome);

	values[0] = outcome.value ? CStringGetTextDatum(outcome.value) : (Datum) 0;
	nulls[0] = outcome.value == NULL;
	values[1] = BoolGetDatum(outcome.value_changed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* paxos_append appends proposed_value to the group's log; returns its round. */
Datum
paxos_append(PG_FUNCTION_ARGS)
{
	char	   *proposer_id = PaxosTextArg(fcinfo, 0, "current_proposer_id");
	char	   *group_id = PaxosTextArg(fcinfo, 1, "current_group_id");
	char	   *value = PaxosTextArg(fcinfo, 2, "proposed_value");

	PaxosCheckProposerId(proposer_id);
	PG_RETURN_INT64(PaxosAppendValue(group_id, PaxosUniqueValueId(proposer_id), value));
}

/* paxos_max_group_round: see PaxosMaxGroupRound. */
Datum
paxos_max_group_round(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	bool		accepted_only = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);

	PG_RETURN_INT64(PaxosMaxGroupRound(group_id, accepted_only));
}

/* paxos_apply_log executes the log up to max_round_num; returns it. */
Datum
paxos_apply_log(PG_FUNCTION_ARGS)
{
	char	   *proposer_id = PaxosTextArg(fcinfo, 0, "current_proposer_id");
	char	   *group_id = PaxosTextArg(fcinfo, 1, "current_group_id");
	int64		max_round = PaxosInt64Arg(fcinfo, 2, "max_round_num");

	PaxosCheckProposerId(proposer_id);
	(void) PaxosApplyUpTo(group_id, max_round, APPLY_ALL);
	PG_RETURN_INT64(max_round);
}

/*
 * paxos_apply_and_append appends proposed_value after executing every entry
 * that will precede it, retrying in the next round while others win.
 */
Datum
paxos_apply_and_append(PG_FUNCTION_ARGS)
{
	char	   *proposer_id = PaxosTextArg(fcinfo, 0, "current_proposer_id");
	char	   *group_id = PaxosTextArg(fcinfo, 1, "current_group_id");
	char	   *value = PaxosTextArg(fcinfo, 2, "proposed_value");
	char	   *value_id;
	int64		round;
	int			lost = 0;

	PaxosCheckProposerId(proposer_id);
	value_id = PaxosUniqueValueId(proposer_id);
	round = LocalMaxRound(group_id);
	for (;;)
	{
		PaxosOutcome outcome;

		(void) PaxosApplyUpTo(group_id, round, APPLY_ALL);
		round++;
		PaxosRunRound(group_id, round, value_id, value, lost++, &outcome);
		if (!outcome.value_changed)
			PG_RETURN_INT64(round);
	}
}
