/*
 * acceptor_rpc.c
 *    The acceptor's side of Paxos as SQL functions that proposers on other
 *    nodes call over libpq: prepare (phase 1b), accept (phase 2b), learn,
 *    and the read-only calls used to find and copy the log.
 *
 * Each call runs in its own transaction on the acceptor's node (the
 * proposer sends it in autocommit mode), so a promise or an acceptance is
 * durable when the proposer receives the answer.  The decisions themselves
 * are the core's; this file parses arguments and builds answers.
 *
 * A group's standing promise (a leader's ballot for every round from some
 * round on, standing_promise.c) binds every round it covers: prepare and
 * accept raise the round's promise to it before they decide, under the
 * share lock on the group's promises that a grant takes exclusively.
 */
#include "pg_paxos.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/* Columns of accept_response: phase 2b, then phase 1b of the next round. */
#define ACCEPT_RESPONSE_COLUMNS 18
/* Columns of prepare_response: phase 1b, then "standing promise granted". */
#define PREPARE_RESPONSE_COLUMNS 11

PG_FUNCTION_INFO_V1(paxos_request_prepare);
PG_FUNCTION_INFO_V1(paxos_request_standing_prepare);
PG_FUNCTION_INFO_V1(paxos_request_accept);
PG_FUNCTION_INFO_V1(paxos_confirm_consensus);
PG_FUNCTION_INFO_V1(paxos_max_accepted_round);
PG_FUNCTION_INFO_V1(paxos_decided_rounds);

typedef struct PrepareArgs
{
	px_standing standing;		/* binds the round */
	int64		round;
	px_ballot	ballot;
	px_promise	reply;
} PrepareArgs;

typedef struct AcceptArgs
{
	px_standing standing;
	int64		round;
	px_ballot	ballot;
	px_value	value;
	px_accepted reply;
} AcceptArgs;

static void BallotFromArgs(FunctionCallInfo fcinfo, px_ballot *ballot,
						   char **group_id, int64 *round);
static void RequireReadCommitted(void);
static bool PrepareStep(px_acceptor_state *st, void *arg);
static bool AcceptStep(px_acceptor_state *st, void *arg);
static Datum TextOrNull(const char *s, bool *isnull);
static void PromiseToDatums(const px_promise *reply, int64 max_round,
							int64 config_round, Datum *values, bool *nulls);
static void LearnPiggybacked(FunctionCallInfo fcinfo, int argno,
							 const GroupInfo *group, const px_ballot *ballot);
static bool LearnOwnStep(px_acceptor_state *st, void *arg);

/* Whether LearnPiggybacked just learned its round (the applier is woken). */
static bool own_learned = false;

/*
 * BallotFromArgs reads the (proposer id, group, round, proposal number)
 * arguments every RPC starts with, refusing bad values.
 */
static void
BallotFromArgs(FunctionCallInfo fcinfo, px_ballot *ballot, char **group_id,
			   int64 *round)
{
	char	   *proposer_id = PaxosTextArg(fcinfo, 0, "current_proposer_id");
	int64		proposal;

	*group_id = PaxosTextArg(fcinfo, 1, "current_group_id");
	*round = PaxosInt64Arg(fcinfo, 2, "current_round_num");
	proposal = PaxosInt64Arg(fcinfo, 3, "current_proposal_num");
	PaxosCheckRoundNumber(*round, "current_round_num");
	PaxosCheckRoundNumber(proposal, "current_proposal_num");
	if (proposer_id[0] == '\0' || px_ballot_set(ballot, proposal, proposer_id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("current_proposer_id must be between 1 and %d bytes",
						PX_PROPOSER_ID_MAX - 1)));
}

/*
 * RequireReadCommitted refuses to run a prepare or accept in a transaction
 * that sees an older state than the latest: each reads what committed
 * while it waited for its locks (a round's row, the group's promises), and
 * under REPEATABLE READ or SERIALIZABLE it would decide on what it saw
 * when its transaction began.  pg_paxos's own connections ask for READ
 * COMMITTED (peer_connection.c), whatever the server's default.
 */
static void
RequireReadCommitted(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("paxos acceptor steps must run under READ COMMITTED"),
				 errhint("Call them outside a REPEATABLE READ or SERIALIZABLE transaction; "
						 "pg_paxos's own connections do.")));
}

/* PrepareStep is phase 1b on the stored state, under the standing promise. */
static bool
PrepareStep(px_acceptor_state *st, void *arg)
{
	PrepareArgs *pa = (PrepareArgs *) arg;

	px_standing_apply(&pa->standing, pa->round, st);
	return px_acceptor_prepare(st, &pa->ballot, &pa->reply);
}

/* AcceptStep is phase 2b on the stored state, under the standing promise. */
static bool
AcceptStep(px_acceptor_state *st, void *arg)
{
	AcceptArgs *aa = (AcceptArgs *) arg;

	px_standing_apply(&aa->standing, aa->round, st);
	return px_acceptor_accept(st, &aa->ballot, aa->value, &aa->reply);
}

/* TextOrNull converts a C string to a text Datum, NULL to SQL NULL. */
static Datum
TextOrNull(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * PromiseToDatums fills the ten columns of a phase-1b answer (the layout of
 * prepare_response).
 */
static void
PromiseToDatums(const px_promise *reply, int64 max_round, int64 config_round,
				Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * 10);
	values[0] = BoolGetDatum(reply->promised);
	values[1] = CStringGetTextDatum(reply->promised_ballot.proposer);
	values[2] = Int64GetDatum(reply->promised_ballot.number);
	values[3] = TextOrNull(reply->has_accepted ? reply->value.id : NULL, &nulls[3]);
	values[4] = TextOrNull(reply->has_accepted ? reply->value.data : NULL, &nulls[4]);
	values[5] = Int64GetDatum(reply->accepted.number);
	nulls[5] = !reply->has_accepted;
	values[6] = TextOrNull(reply->has_accepted ? reply->accepted.proposer : NULL, &nulls[6]);
	values[7] = BoolGetDatum(reply->decided);
	values[8] = Int64GetDatum(max_round);
	values[9] = Int64GetDatum(config_round);
}

/*
 * LearnPiggybacked handles the learn a proposer sends along with its next
 * request: round learned_round_num was chosen under ballot
 * (learned_proposal_num, the same proposer).  A ballot carries one value
 * only, so an acceptor that accepted that very ballot there knows the
 * chosen value; one that did not learns the round later, on demand.  A
 * round compacted here meanwhile needs no learning.
 */
static void
LearnPiggybacked(FunctionCallInfo fcinfo, int argno, const GroupInfo *group,
				 const px_ballot *ballot)
{
	px_acceptor_state st;
	px_ballot	learned;
	int64		round;

	if (PG_ARGISNULL(argno) || PG_ARGISNULL(argno + 1))
		return;
	round = PG_GETARG_INT64(argno);
	PaxosCheckRoundNumber(round, "learned_round_num");
	if (round < group->compacted_below)
		return;
	px_ballot_set(&learned, PG_GETARG_INT64(argno + 1), ballot->proposer);
	own_learned = false;
	RoundStoreStep(group->group_id, round, LearnOwnStep, &learned, &st);
	if (own_learned)
		PaxosWakeApplierAtCommit();
}

/* LearnOwnStep is the learn step of LearnPiggybacked; sets own_learned. */
static bool
LearnOwnStep(px_acceptor_state *st, void *arg)
{
	const px_ballot *learned = (const px_ballot *) arg;

	if (st->decided || !st->has_accepted ||
		px_ballot_cmp(&st->accepted, learned) != 0 || MembershipIsChange(st->value))
		return false;
	own_learned = px_acceptor_learn(st, learned, st->value);
	return own_learned;
}

/*
 * Prepare is phase 1b (paxos_request_prepare): promise not to accept lower
 * ballots for this round, and report what was accepted, whether the round
 * is decided, the highest round this node knows and its membership
 * version, so that the proposer can skip ahead and notice a newer
 * membership.  With standing (paxos_request_standing_prepare), it promises
 * the ballot for this round and every later one, or nothing: the group's
 * standing promise (standing_promise.c), whose max_round_num, read under
 * the exclusive lock, tells the proposer whether anything was accepted
 * above this round; if the group's acceptor is busy, an ordinary phase 1b
 * (standing = false).  That call takes no piggybacked learn.
 */
static Datum
Prepare(FunctionCallInfo fcinfo, bool standing)
{
	PrepareArgs pa;
	char	   *group_id;
	int64		round;
	int64		max_round;
	GroupInfo	group;
	px_acceptor_state st;
	bool		granted = false;
	bool		busy = false;
	TupleDesc	desc;
	Datum		values[PREPARE_RESPONSE_COLUMNS];
	bool		nulls[PREPARE_RESPONSE_COLUMNS];
	MemoryContext outer = CurrentMemoryContext;
	HeapTuple	tuple;

	RequireReadCommitted();
	BallotFromArgs(fcinfo, &pa.ballot, &group_id, &round);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_paxos: return type must be a row type");

	SPI_connect();
	if (standing)
		granted = PaxosStandingPrepare(group_id, round, &pa.ballot, &group, &pa.reply, &busy);
	if (!standing || busy)
	{
		/* an ordinary phase 1b: no standing promise asked, or none now */
		PaxosLockPromises(group_id);
		GroupLoadOrError(group_id, &group);
		PaxosLoadStanding(group_id, &pa.standing);
		if (!standing)			/* the standing call has no such arguments */
			LearnPiggybacked(fcinfo, 4, &group, &pa.ballot);
		pa.round = round;
		RoundStoreStep(group_id, round, PrepareStep, &pa, &st);
	}
	/* a fresh snapshot: a grant's answer shows every acceptance that locked before it */
	max_round = RoundStoreMaxRound(group_id, true);

	MemoryContextSwitchTo(outer);
	PromiseToDatums(&pa.reply, max_round, group.config_round, values, nulls);
	values[10] = BoolGetDatum(granted);
	nulls[10] = false;
	tuple = heap_form_tuple(BlessTupleDesc(desc), values, nulls);
	SPI_finish();

	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}

/* paxos_request_prepare (phase 1b): see Prepare. */
Datum
paxos_request_prepare(PG_FUNCTION_ARGS)
{
	return Prepare(fcinfo, false);
}

/* paxos_request_standing_prepare: phase 1b and a standing promise; see Prepare. */
Datum
paxos_request_standing_prepare(PG_FUNCTION_ARGS)
{
	return Prepare(fcinfo, true);
}

/*
 * paxos_request_accept (phase 2b): accept the value under this ballot
 * unless a higher ballot was promised since.  With prepare_next_round, an
 * acceptor that accepted also runs phase 1b of the next round for the same
 * ballot, so that the proposer's next append can start at phase 2a; the
 * accept and the promise are made durable by one commit.
 */
Datum
paxos_request_accept(PG_FUNCTION_ARGS)
{
	AcceptArgs	aa;
	PrepareArgs pa;
	char	   *group_id;
	int64		round;
	bool		prepare_next = !PG_ARGISNULL(8) && PG_GETARG_BOOL(8);
	px_acceptor_state st;
	TupleDesc	desc;
	Datum		values[ACCEPT_RESPONSE_COLUMNS];
	bool		nulls[ACCEPT_RESPONSE_COLUMNS] = {0};
	MemoryContext outer = CurrentMemoryContext;
	HeapTuple	tuple;
	GroupInfo	group;
	int64		max_round = -1;

	RequireReadCommitted();
	BallotFromArgs(fcinfo, &aa.ballot, &group_id, &round);
	aa.value.id = PaxosTextArg(fcinfo, 4, "proposed_value_id");
	aa.value.data = PaxosTextArgOrNull(fcinfo, 5);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_paxos: return type must be a row type");

	SPI_connect();
	PaxosLockPromises(group_id);
	GroupLoadOrError(group_id, &group);
	PaxosLoadStanding(group_id, &aa.standing);
	LearnPiggybacked(fcinfo, 6, &group, &aa.ballot);
	aa.round = round;
	RoundStoreStep(group_id, round, AcceptStep, &aa, &st);
	prepare_next = prepare_next && aa.reply.accepted && round < PG_INT64_MAX;
	if (prepare_next)
	{
		/* max_round is left out: it only matters to a proposer that lost */
		pa.ballot = aa.ballot;
		pa.standing = aa.standing;
		pa.round = round + 1;
		RoundStoreStep(group_id, round + 1, PrepareStep, &pa, &st);
	}

	MemoryContextSwitchTo(outer);
	values[0] = BoolGetDatum(aa.reply.accepted);
	values[1] = Int64GetDatum(aa.reply.promised_ballot.number);
	values[2] = CStringGetTextDatum(aa.reply.promised_ballot.proposer);
	values[3] = BoolGetDatum(aa.reply.decided);
	values[4] = TextOrNull(aa.reply.decided ? aa.reply.value.id : NULL, &nulls[4]);
	values[5] = TextOrNull(aa.reply.decided ? aa.reply.value.data : NULL, &nulls[5]);
	values[6] = Int64GetDatum(aa.reply.chosen_ballot.number);
	nulls[6] = !aa.reply.decided;
	values[7] = TextOrNull(aa.reply.decided ? aa.reply.chosen_ballot.proposer : NULL, &nulls[7]);
	if (prepare_next)
		PromiseToDatums(&pa.reply, max_round, group.config_round, &values[8], &nulls[8]);
	else
		memset(&nulls[8], true, sizeof(bool) * 10);
	tuple = heap_form_tuple(BlessTupleDesc(desc), values, nulls);
	SPI_finish();

	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}

/*
 * paxos_confirm_consensus (learn): record that the value was chosen under
 * this ballot.  Learning can always be redone from the acceptors, so an
 * ordinary entry is committed without waiting for the WAL flush; a
 * membership change is flushed, because the next change relies on a
 * majority knowing it.  A round compacted here is known already.
 */
Datum
paxos_confirm_consensus(PG_FUNCTION_ARGS)
{
	px_ballot	ballot;
	char	   *group_id;
	int64		round;
	px_value	value;
	GroupInfo	group;

	BallotFromArgs(fcinfo, &ballot, &group_id, &round);
	value.id = PaxosTextArg(fcinfo, 4, "accepted_value_id");
	value.data = PaxosTextArgOrNull(fcinfo, 5);

	if (!MembershipIsChange(value))
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	if (round >= group.compacted_below)
		RoundStoreLearn(group_id, round, &ballot, value);
	SPI_finish();

	PG_RETURN_BOOL(true);
}

/*
 * paxos_max_accepted_round returns the highest round this node has a row
 * for (accepted_only: with an accepted value), -1 for an empty log.
 */
Datum
paxos_max_accepted_round(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	bool		accepted_only = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	GroupInfo	group;
	int64		max_round;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	max_round = accepted_only ? PaxosLocalMaxAccepted(group_id)
		: RoundStoreMaxRound(group_id, false);
	SPI_finish();

	PG_RETURN_INT64(max_round);
}

/*
 * paxos_decided_rounds returns the decided entries in [from, to], at most
 * 1000 per call, for a node that catches up.  Asked for rounds compacted
 * here, it says so with an error, instead of answering with nothing: the
 * node asking must copy a snapshot.
 */
Datum
paxos_decided_rounds(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		from_round = PaxosInt64Arg(fcinfo, 1, "from_round_num");
	int64		to_round = PaxosInt64Arg(fcinfo, 2, "to_round_num");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	GroupInfo	group;
	uint64		n;
	uint64		i;

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	PaxosCheckNotCompacted(&group, from_round);
	n = RoundStoreDecidedIn(group_id, from_round, to_round, 1000);
	for (i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
						  values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();

	return (Datum) 0;
}
