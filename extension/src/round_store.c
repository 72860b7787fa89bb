/*
 * round_store.c
 *    Durable acceptor state: one row of pgp_metadata.round per (group,
 *    round), read and written through SPI with plans kept for the life of
 *    the backend.
 *
 * The acceptor's decisions are made by the core (px_acceptor_*); this file
 * only loads a round's state under a row lock, hands it to a step function,
 * and stores the result when the step changed it.  The row lock serialises
 * concurrent requests for the same round; requests for different rounds run
 * in parallel.  Durability comes from the transaction that calls us: an RPC
 * commits (and so fsyncs its promise or acceptance) before it answers.
 *
 * Every function here expects the caller to be connected to SPI.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

/* Columns of the state, in the order every plan below uses. */
#define ROUND_STATE_COLUMNS \
	"min_proposal_num, proposer_id, value_id, value, " \
	"accepted_proposal_num, accepted_proposer_id, consensus"

typedef enum RoundPlan
{
	PLAN_LOAD = 0,
	PLAN_LOAD_FOR_UPDATE,
	PLAN_INSERT,
	PLAN_UPDATE,
	PLAN_UPDATE_PROMISE,
	PLAN_MAX_ROUND,
	PLAN_MAX_ACCEPTED_ROUND,
	PLAN_DECIDED_IN,
	PLAN_UNDECIDED_IN,
	PLAN_COUNT
} RoundPlan;

static SPIPlanPtr plans[PLAN_COUNT];

static SPIPlanPtr GetPlan(RoundPlan which);
static void StateFromTuple(HeapTuple tuple, TupleDesc desc, px_acceptor_state *st);
static void StateToDatums(const char *group_id, int64 round,
						  const px_acceptor_state *st, Datum *values, char *nulls);
static bool LearnStep(px_acceptor_state *st, void *arg);

/* GetPlan prepares (once per backend) and returns one of the plans above. */
static SPIPlanPtr
GetPlan(RoundPlan which)
{
	static const char *const sql[PLAN_COUNT] = {
		[PLAN_LOAD] = "SELECT " ROUND_STATE_COLUMNS
		" FROM pgp_metadata.round WHERE group_id = $1 AND round_num = $2",
		[PLAN_LOAD_FOR_UPDATE] = "SELECT " ROUND_STATE_COLUMNS
		" FROM pgp_metadata.round WHERE group_id = $1 AND round_num = $2"
		" FOR UPDATE",
		[PLAN_INSERT] = "INSERT INTO pgp_metadata.round (group_id, round_num, "
		ROUND_STATE_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (group_id, round_num) DO NOTHING",
		[PLAN_UPDATE] = "UPDATE pgp_metadata.round SET min_proposal_num = $3,"
		" proposer_id = $4, value_id = $5, value = $6,"
		" accepted_proposal_num = $7, accepted_proposer_id = $8,"
		" consensus = $9 WHERE group_id = $1 AND round_num = $2",
		/* the accepted value unchanged: it is neither sent nor stored again */
		[PLAN_UPDATE_PROMISE] = "UPDATE pgp_metadata.round SET min_proposal_num = $3,"
		" proposer_id = $4, consensus = $5 WHERE group_id = $1 AND round_num = $2",
		[PLAN_MAX_ROUND] = "SELECT greatest(max(round_num), (SELECT compacted_below - 1"
		" FROM pgp_metadata.\"group\" WHERE group_id = $1))"
		" FROM pgp_metadata.round WHERE group_id = $1",
		[PLAN_MAX_ACCEPTED_ROUND] = "SELECT greatest(max(round_num), (SELECT compacted_below - 1"
		" FROM pgp_metadata.\"group\" WHERE group_id = $1))"
		" FROM pgp_metadata.round WHERE group_id = $1 AND value_id IS NOT NULL",
		[PLAN_DECIDED_IN] = "SELECT round_num, accepted_proposal_num,"
		" accepted_proposer_id, value_id, value FROM pgp_metadata.round"
		" WHERE group_id = $1 AND round_num BETWEEN $2 AND $3 AND consensus"
		" ORDER BY round_num LIMIT $4",
		[PLAN_UNDECIDED_IN] = "SELECT s.start, r.round_num FROM (SELECT greatest($2::bigint,"
		" coalesce((SELECT compacted_below FROM pgp_metadata.\"group\" WHERE group_id = $1), 0)) AS start) s"
		" LEFT JOIN LATERAL (SELECT round_num FROM pgp_metadata.round r WHERE r.group_id = $1"
		" AND r.round_num BETWEEN s.start AND $3 AND r.consensus ORDER BY r.round_num LIMIT $4) r ON true"
		" ORDER BY r.round_num",
	};
	static const int nargs[PLAN_COUNT] = {2, 2, 9, 9, 5, 1, 1, 4, 4};
	Oid			types[9] = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, TEXTOID, BOOLOID};

	if (which == PLAN_DECIDED_IN || which == PLAN_UNDECIDED_IN)
		types[2] = types[3] = INT8OID;
	if (which == PLAN_UPDATE_PROMISE)
		types[4] = BOOLOID;
	return PaxosKeptPlan(&plans[which], sql[which], nargs[which], types);
}

/* StateFromTuple reads ROUND_STATE_COLUMNS; strings land in the current context. */
static void
StateFromTuple(HeapTuple tuple, TupleDesc desc, px_acceptor_state *st)
{
	bool		isnull;
	Datum		d;
	char	   *proposer;

	px_acceptor_init(st);

	d = SPI_getbinval(tuple, desc, 1, &isnull);
	proposer = SPI_getvalue(tuple, desc, 2);
	if (px_ballot_set(&st->promised, isnull ? -1 : DatumGetInt64(d),
					  proposer ? proposer : "") != 0)
		elog(ERROR, "pg_paxos: stored proposer id too long");

	st->value.id = SPI_getvalue(tuple, desc, 3);
	st->value.data = SPI_getvalue(tuple, desc, 4);

	d = SPI_getbinval(tuple, desc, 5, &isnull);
	if (!isnull)
	{
		char	   *acc_proposer = SPI_getvalue(tuple, desc, 6);

		st->has_accepted = true;
		if (px_ballot_set(&st->accepted, DatumGetInt64(d),
						  acc_proposer ? acc_proposer : "") != 0)
			elog(ERROR, "pg_paxos: stored proposer id too long");
	}
	d = SPI_getbinval(tuple, desc, 7, &isnull);
	st->decided = !isnull && DatumGetBool(d);
}

/* StateToDatums builds the nine parameters of PLAN_INSERT and PLAN_UPDATE. */
static void
StateToDatums(const char *group_id, int64 round, const px_acceptor_state *st,
			  Datum *values, char *nulls)
{
	memset(nulls, ' ', 9);
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	values[2] = Int64GetDatum(st->promised.number);
	values[3] = CStringGetTextDatum(st->promised.proposer);
	if (st->has_accepted)
	{
		values[4] = CStringGetTextDatum(st->value.id ? st->value.id : "");
		if (st->value.data)
			values[5] = CStringGetTextDatum(st->value.data);
		else
			nulls[5] = 'n';
		values[6] = Int64GetDatum(st->accepted.number);
		values[7] = CStringGetTextDatum(st->accepted.proposer);
	}
	else
		nulls[4] = nulls[5] = nulls[6] = nulls[7] = 'n';
	values[8] = BoolGetDatum(st->decided);
}

/*
 * RoundStoreLoad reads the state of a round; false if the round has no row.
 * With for_update the row stays locked until the transaction ends.
 */
bool
RoundStoreLoad(const char *group_id, int64 round, bool for_update,
			   px_acceptor_state *st)
{
	Datum		values[2];
	int			rc;

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	rc = SPI_execute_plan(GetPlan(for_update ? PLAN_LOAD_FOR_UPDATE : PLAN_LOAD),
						  values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: loading round failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		px_acceptor_init(st);
		return false;
	}
	StateFromTuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, st);
	return true;
}

/* SameAccepted: a step left the accepted ballot and value as they were. */
static bool
SameAccepted(const px_acceptor_state *before, const px_acceptor_state *after)
{
	if (before->has_accepted != after->has_accepted)
		return false;
	return !after->has_accepted ||
		(px_ballot_cmp(&before->accepted, &after->accepted) == 0 &&
		 px_value_equal(before->value, after->value));
}

/*
 * RoundStoreStep runs one acceptor step on a round: load (locked), let step
 * decide, store if it changed anything.  A round without a row starts from
 * the initial state; two requests racing to create the row are resolved by
 * ON CONFLICT, the loser running its step again on the winner's state.  The
 * final state is copied to *result (strings in the caller's SPI context).
 */
void
RoundStoreStep(const char *group_id, int64 round, AcceptorStepFn step,
			   void *arg, px_acceptor_state *result)
{
	for (;;)
	{
		px_acceptor_state st;
		bool		found = RoundStoreLoad(group_id, round, true, &st);
		px_acceptor_state before = st;
		Datum		values[9];
		char		nulls[9];
		int			rc;

		if (!found)
		{
			GroupInfo	group;

			/* a round without a row may be one compacted away: refuse it */
			GroupLoadOrError(group_id, &group);
			PaxosCheckNotCompacted(&group, round);
		}

		if (!step(&st, arg))
		{
			*result = st;
			return;
		}

		StateToDatums(group_id, round, &st, values, nulls);
		if (found && SameAccepted(&before, &st))
		{
			/* learned or promised: (group, round, promise, proposer, decided) */
			values[4] = values[8];
			rc = SPI_execute_plan(GetPlan(PLAN_UPDATE_PROMISE), values, NULL, false, 0);
		}
		else
			rc = SPI_execute_plan(GetPlan(found ? PLAN_UPDATE : PLAN_INSERT),
								  values, nulls, false, 0);
		if (rc != (found ? SPI_OK_UPDATE : SPI_OK_INSERT))
			elog(ERROR, "pg_paxos: storing round failed: %s",
				 SPI_result_code_string(rc));
		if (found || SPI_processed == 1)
		{
			if (st.value.id != NULL)
				PaxosNoteAcceptedAtCommit(group_id, round);
			if (st.decided && !(found && before.decided))
				PaxosNoteDecidedAtCommit(group_id, round, round);
			*result = st;
			return;
		}
		/* another request created the row first: decide again on its state */
	}
}

/*
 * RoundStoreMaxRound is the highest round with a row (or an accepted
 * value); at least the last compacted round, whose row is gone.
 */
int64
RoundStoreMaxRound(const char *group_id, bool accepted_only)
{
	Datum		values[1];
	bool		isnull;
	Datum		d;
	int			rc;

	values[0] = CStringGetTextDatum(group_id);
	rc = SPI_execute_plan(GetPlan(accepted_only ? PLAN_MAX_ACCEPTED_ROUND : PLAN_MAX_ROUND),
						  values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_paxos: max round query failed: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * RoundStoreMaxRoundLatest is RoundStoreMaxRound(accepted_only) read with
 * the latest snapshot, whatever the caller's transaction sees.
 */
int64
RoundStoreMaxRoundLatest(const char *group_id)
{
	Datum		values[1];
	bool		isnull;
	Datum		d;
	int			rc;

	values[0] = CStringGetTextDatum(group_id);
	rc = SPI_execute_snapshot(GetPlan(PLAN_MAX_ACCEPTED_ROUND), values, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_paxos: max round query failed: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

typedef struct LearnArgs
{
	const px_ballot *ballot;
	px_value	value;
	bool		newly_decided;
	bool		conflict;
} LearnArgs;

/* LearnStep is the learn step of RoundStoreLearn. */
static bool
LearnStep(px_acceptor_state *st, void *arg)
{
	LearnArgs  *la = (LearnArgs *) arg;
	bool		was_decided = st->decided;
	bool		changed = px_acceptor_learn(st, la->ballot, la->value);

	la->newly_decided = changed && !was_decided;
	la->conflict = was_decided && !px_value_equal(st->value, la->value);
	return changed;
}

/*
 * RoundStoreLearn records that (ballot, value) was chosen in a round, and
 * applies a membership change the first time it is learned.  Being told of
 * a different value than the one already known as chosen means Paxos was
 * violated somewhere: that is reported loudly, never papered over.
 * Returns true when the round was not known as decided before.
 */
bool
RoundStoreLearn(const char *group_id, int64 round, const px_ballot *ballot,
				px_value value)
{
	LearnArgs	la = {ballot, value, false, false};
	px_acceptor_state st;

	RoundStoreStep(group_id, round, LearnStep, &la, &st);
	if (la.conflict)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pg_paxos: round " INT64_FORMAT " of group \"%s\" was learned with two different values",
						round, group_id),
				 errdetail("Known value id \"%s\", new value id \"%s\".",
						   st.value.id ? st.value.id : "",
						   value.id ? value.id : "")));
	if (la.newly_decided && MembershipIsChange(value))
		MembershipApplyChosen(group_id, round, value);
	if (la.newly_decided)
		PaxosWakeApplierAtCommit();
	return la.newly_decided;
}

/*
 * RoundStoreDecidedIn selects the decided rounds in [from, to], at most
 * limit of them, as (round_num, accepted_proposal_num, accepted_proposer_id,
 * value_id, value); the rows are in SPI_tuptable until the next SPI call.
 */
uint64
RoundStoreDecidedIn(const char *group_id, int64 from_round, int64 to_round,
					int64 limit)
{
	Datum		values[4];
	int			rc;

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(from_round);
	values[2] = Int64GetDatum(to_round);
	values[3] = Int64GetDatum(limit);
	rc = SPI_execute_plan(GetPlan(PLAN_DECIDED_IN), values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: decided rounds query failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* Decided rounds read at a time while looking for the undecided ones. */
#define UNDECIDED_SCAN_CHUNK 4096
/* Up to this many rounds past the known decided ones are looked up singly. */
#define UNDECIDED_LOOKUPS 4

/*
 * RoundStoreUndecidedIn fills rounds[] with up to max rounds in [from, to]
 * that this node does not know as decided, in order; returns how many.
 * Compacted rounds are not among them: they were decided.  It reads the
 * decided rounds of the range in index order and reports the gaps, so the
 * usual case (a few recent rounds, all decided) is one short index scan.
 */
int
RoundStoreUndecidedIn(const char *group_id, int64 from_round, int64 to_round,
					  int64 *rounds, int max)
{
	Datum		values[4];
	int			n = 0;
	int64		next;
	int64		through;

	/*
	 * Rounds committed transactions published as decided need no query;
	 * a transaction-wide snapshot might not see them yet, so not there.
	 */
	if (!IsolationUsesXactSnapshot())
	{
		through = PaxosDecidedThrough(group_id);
		if (to_round <= through)
			return 0;
		from_round = Max(from_round, through + 1);

		/*
		 * A few rounds past it (on a follower, the newest accepted round,
		 * decided only when the next accept carries it): looked up one by
		 * one; a round without a row (compacted?) takes the query below.
		 */
		if (through >= 0 && to_round - from_round < UNDECIDED_LOOKUPS)
		{
			int64		r;

			for (r = from_round; r <= to_round && n < max; r++)
			{
				px_acceptor_state st;

				if (!RoundStoreLoad(group_id, r, false, &st))
					break;
				if (!st.decided)
					rounds[n++] = r;
			}
			if (r > to_round || n == max)
			{
				PaxosNoteDecidedAtCommit(group_id, from_round,
										 n > 0 ? rounds[0] - 1 : to_round);
				return n;
			}
			n = 0;
		}
	}
	next = from_round;
	values[0] = CStringGetTextDatum(group_id);
	values[2] = Int64GetDatum(to_round);
	values[3] = Int64GetDatum(UNDECIDED_SCAN_CHUNK);
	while (n < max && next <= to_round)
	{
		uint64		i;
		uint64		decided = 0;
		bool		isnull;
		int			rc;

		values[1] = Int64GetDatum(next);
		rc = SPI_execute_plan(GetPlan(PLAN_UNDECIDED_IN), values, NULL, false, 0);
		if (rc != SPI_OK_SELECT || SPI_processed < 1)
			elog(ERROR, "pg_paxos: undecided rounds query failed: %s", SPI_result_code_string(rc));
		next = Max(next, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull)));
		for (i = 0; i < SPI_processed && n < max; i++)
		{
			int64		d = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull));

			if (isnull)
				break;			/* no decided round in the range */
			decided++;
			while (next < d && n < max)
				rounds[n++] = next++;
			if (next == d)
				next = d + 1;
		}
		if (decided < UNDECIDED_SCAN_CHUNK)
		{
			/* past the last decided round, none is */
			while (next <= to_round && n < max)
				rounds[n++] = next++;
			break;
		}
	}
	/* what this query saw decided from its first round on, for the next */
	PaxosNoteDecidedAtCommit(group_id, from_round,
							 n > 0 ? rounds[0] - 1 : Min(next - 1, to_round));
	return n;
}
