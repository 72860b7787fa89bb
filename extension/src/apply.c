/*
 * apply.c
 *    Applying the log: every node executes the entries of a group in log
 *    order (committed transactions' row changes, DDL, plain SQL values,
 *    tables that start being replicated), in the background and before a
 *    strong read.
 *
 * An entry is applied at most once on a node: a transaction's origin
 * records, in the local commit that holds its changes, that it did
 * (pgp_metadata.local_commit, capture.c); the applier, which goes through
 * every entry in log order, waits for a local origin's transaction to end
 * and skips the entry if that row is there.  group's last_applied_round is
 * the applier's cursor: every round up to it is applied.  Applying and advancing
 * the cursor commit together, so a crash at any instant leaves a state the
 * applier resumes from.  If a change cannot be applied (a row missing, a
 * constraint violated), the applier stops at that round and says so
 * instead of skipping it: the node would diverge otherwise.
 *
 * Changes are applied with session_replication_role = replica, so that
 * ordinary triggers and foreign-key checks, which ran on the origin, do
 * not run again; the capture trigger ignores them (PaxosApplying).
 */
#include "pg_paxos.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(paxos_apply_upto);


/*
 * Whether pgp_metadata.local_commit names transactions copied with a
 * snapshot (when this node joined, or caught up by a copy): only then do
 * entries of other origins need a look there.  Set once per PaxosApplyUpTo.
 */
static bool rows_of_others = false;

typedef struct ApplyCollector
{
	bool		answered;
	int64		applied;
} ApplyCollector;

static void ApplyChangesAsReplica(const char *group_id, int64 round, const char *entry);
static bool WaitForLocalOrigin(const char *group_id, const char *entry);
static bool LockApplier(const char *group_id, bool wait_briefly);
static void RememberExclusiveTables(const char *entry);
static void RecordDdl(const char *group_id, int64 round, int index,
					  const char *entry);
static void ApplyCommittedRound(const char *group_id, int64 round, const char *value);
static bool TryApplyExclusive(const char *group_id, int64 round, const char *value);
static bool OnApplied(void *arg, int host, PGresult *res, const char *error);

/*
 * NeedsExclusiveLock tells whether applying an entry takes a table's
 * ACCESS EXCLUSIVE lock (TRUNCATE, DDL).  It may say yes for an entry that
 * only contains such text in a value: that costs nothing but caution.
 */
static bool
NeedsExclusiveLock(const char *entry)
{
	return strstr(entry, "\"op\":\"T\"") != NULL || strstr(entry, "\"op\":\"S\"") != NULL;
}

/*
 * LockApplier takes the lock that makes one applier at a time apply a
 * group's log on this node, until the end of the transaction.  Without
 * `wait_briefly` it waits as long as needed.  With it, it gives up after
 * a short while: the caller is a statement catching up for a strong read,
 * possibly holding a lock that the busy applier (the worker, waiting for
 * an ACCESS EXCLUSIVE lock for a TRUNCATE or DDL round) needs, and waiting
 * for each other would only end when the worker's lock_timeout expires,
 * again and again.
 */
static bool
LockApplier(const char *group_id, bool wait_briefly)
{
	int			attempt;

	if (!wait_briefly)
		return PaxosLockGroup(PAXOS_APPLY_LOCK, group_id, false, true);
	for (attempt = 0; attempt < 50; attempt++)
	{
		if (PaxosLockGroup(PAXOS_APPLY_LOCK, group_id, false, false))
			return true;
		pg_usleep(2000);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/*
 * PaxosApplyUpTo applies every round of a group up to max_round on this
 * node, in the current transaction (certifying and learning them first, in
 * transactions of their own), and returns the last round applied.  A round
 * that needs an ACCESS EXCLUSIVE lock (TRUNCATE, DDL) is applied as any
 * other with APPLY_ALL; APPLY_STOP_BEFORE_EXCLUSIVE stops before it (see
 * PaxosSyncGroup); APPLY_YIELD_ON_LOCK (the background worker) stops
 * before it if the lock is not granted at once: a backend waiting for the
 * worker while holding a lock on the table must not wait forever.
 */
int64
PaxosApplyUpTo(const char *group_id, int64 max_round, PaxosApplyMode mode)
{
	static SPIPlanPtr cursor_plan = NULL;
	GroupInfo	group;
	int64		round;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];

	SPI_connect();
	if (!LockApplier(group_id, mode == APPLY_STOP_BEFORE_EXCLUSIVE))
	{
		/* another applier is busy (see LockApplier): go on from here */
		GroupLoadOrError(group_id, &group);
		SPI_finish();
		return group.last_applied_round;
	}
	GroupLoadOrError(group_id, &group);
	SPI_finish();
	PaxosNoteAppliedAtCommit(group_id, group.last_applied_round);
	if (group.last_applied_round >= max_round)
		return group.last_applied_round;

	if (!PaxosCertifiedAtLeast(group_id, max_round))
	{
		int			n;

		(void) PaxosCertifyRound(group_id, max_round, &n);
	}

	SPI_connect();
	{
		static SPIPlanPtr others_plan = NULL;
		int			save_nestlevel = NewGUCNestLevel();

		/*
		 * Replica role for the whole call (ApplyChangesAsReplica), not per
		 * entry: changing session_replication_role empties the plan cache.
		 */
		(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

		rows_of_others = PaxosGroupTest(&others_plan,
										"SELECT EXISTS (SELECT 1 FROM pgp_metadata.local_commit"
										" WHERE group_id = $1 AND copied)", group_id);
		for (round = group.last_applied_round + 1; round <= max_round; round++)
		{
			px_acceptor_state st;

			CHECK_FOR_INTERRUPTS();
			if (!RoundStoreLoad(group_id, round, false, &st) || !st.decided)
				elog(ERROR, "pg_paxos: round " INT64_FORMAT " of group \"%s\" is not learned",
					 round, group_id);
			if (st.value.data == NULL)
				continue;
			if (strncmp(st.value.id, PAXOS_REPLICATE_PREFIX, strlen(PAXOS_REPLICATE_PREFIX)) == 0)
			{
				PaxosStartReplicating(group_id, st.value.data);
				continue;
			}

			/* membership, no-ops, leaders, cancellations: nothing to run */
			if (!PaxosIsTransactionEntry(st.value) &&
				strncmp(st.value.id, PAXOS_INTERNAL_PREFIX, strlen(PAXOS_INTERNAL_PREFIX)) == 0)
				continue;
			if (!PaxosIsTransactionEntry(st.value))
			{
				PaxosExecuteLogValue(group_id, round, st.value.data);
				continue;
			}
			if (mode != APPLY_ALL && NeedsExclusiveLock(st.value.data))
			{
				if (mode == APPLY_STOP_BEFORE_EXCLUSIVE ||
					!TryApplyExclusive(group_id, round, st.value.data))
				{
					max_round = round - 1;
					break;
				}
				continue;
			}
			ApplyCommittedRound(group_id, round, st.value.data);
		}
		values[0] = CStringGetTextDatum(group_id);
		values[1] = Int64GetDatum(max_round);
		if (SPI_execute_plan(PaxosKeptPlan(&cursor_plan,
										   "UPDATE pgp_metadata.\"group\" SET last_applied_round = $2"
										   " WHERE group_id = $1 AND last_applied_round < $2",
										   2, types),
							 values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_paxos: could not record the applied round");
		AtEOXact_GUC(true, save_nestlevel);
	}
	SPI_finish();
	PaxosNoteAppliedAtCommit(group_id, max_round);
	return max_round;
}

/*
 * WaitForLocalOrigin waits, for an entry this node originated, until the
 * originating transaction has ended (until then it may still commit the
 * changes itself, and the applier must neither apply them too nor deadlock
 * with it); true if this node's data already holds the changes.
 */
static bool
WaitForLocalOrigin(const char *group_id, const char *entry)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	PaxosEntry	e;

	bool		own;

	PaxosParseEntry(entry, &e);
	own = e.origin != NULL && strcmp(e.origin, PaxosOriginId()) == 0;
	if (e.id == NULL || (!own && !rows_of_others))
		return false;
	/*
	 * Its xid names it only in the life of this server that began it
	 * (capture.c): after a crash, the same xid may be the applier's own.
	 */
	if (own && TransactionIdIsValid(e.xid) && e.incarnation == PaxosIncarnation() &&
		TransactionIdIsInProgress(e.xid))
		XactLockTableWait(e.xid, NULL, NULL, XLTW_None);

	/*
	 * Its commit left this row if it holds the changes (capture.c); so did
	 * the snapshot this node copied when it joined, for the transactions
	 * its data already held.
	 */
	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(e.id);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "DELETE FROM pgp_metadata.local_commit"
									   " WHERE group_id = $1 AND txn_id = $2", 2, types),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pg_paxos: could not look up transaction %s", e.id);
	return SPI_processed == 1;
}

/*
 * ApplyCommittedRound applies the committed transactions of a round in
 * batch order, each unless its origin did (see the file header).  The
 * cursor, which commits with the changes, is what makes this happen once.
 */
static void
ApplyCommittedRound(const char *group_id, int64 round, const char *value)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	List	   *entries = PaxosSplitBatch(value);
	bool	   *committed = palloc0(sizeof(bool) * Max(1, list_length(entries)));
	ListCell   *lc;
	uint64		i;

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "SELECT entry_index, committed FROM pgp_metadata.outcome"
									   " WHERE group_id = $1 AND round_num = $2", 2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the outcome of round " INT64_FORMAT, round);
	if (SPI_processed != (uint64) list_length(entries))
		elog(ERROR, "pg_paxos: round " INT64_FORMAT " has %d entries but " UINT64_FORMAT " outcomes",
			 round, list_length(entries), SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 1, &isnull));

		if (index >= 0 && index < list_length(entries))
			committed[index] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 2, &isnull));
	}
	foreach(lc, entries)
	{
		const char *entry = (const char *) lfirst(lc);

		if (!committed[foreach_current_index(lc)])
			continue;
		if (!WaitForLocalOrigin(group_id, entry))
			ApplyChangesAsReplica(group_id, round, entry);
		if (strstr(entry, "\"op\":\"S\"") != NULL)
			RecordDdl(group_id, round, foreach_current_index(lc), entry);
	}
	list_free_deep(entries);
}

/*
 * RecordDdl keeps the DDL statements of an applied entry in
 * pgp_metadata.ddl_history, with the cursor: whoever applied it, the
 * applier or the origin's own commit.
 */
static void
RecordDdl(const char *group_id, int64 round, int index, const char *entry)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, INT8OID, INT4OID, TEXTOID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	values[2] = Int32GetDatum(index);
	values[3] = CStringGetTextDatum(entry);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "INSERT INTO pgp_metadata.ddl_history"
									   " (group_id, round_num, entry_index, change_index, txn_id, statement)"
									   " SELECT $1, $2, $3, t.n, $4::jsonb->>'id', t.c->>'sql'"
									   " FROM jsonb_array_elements($4::jsonb->'changes') WITH ORDINALITY AS t(c, n)"
									   " WHERE t.c->>'op' = 'S'", 4, types),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record the DDL of round " INT64_FORMAT, round);
}

/* Tables a round that could not be applied needs exclusively (worker). */
static List *exclusive_tables = NIL;

/*
 * RememberExclusiveTables notes the tables an entry's TRUNCATE and DDL
 * lock, for PaxosLockExclusiveTables to take before the next attempt.
 */
static void
RememberExclusiveTables(const char *entry)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	uint64		i;
	MemoryContext old;

	values[0] = CStringGetTextDatum(entry);
	if (SPI_execute_with_args("SELECT DISTINCT c->>'rel' FROM jsonb_array_elements($1::jsonb) t,"
							  " jsonb_array_elements(t->'changes') c"
							  " WHERE c->>'op' IN ('T', 'S')", 1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the tables of an entry");
	old = MemoryContextSwitchTo(TopMemoryContext);
	list_free_deep(exclusive_tables);
	exclusive_tables = NIL;
	for (i = 0; i < SPI_processed; i++)
		exclusive_tables = lappend(exclusive_tables,
								   pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	MemoryContextSwitchTo(old);
}

/* PaxosExclusiveTablesPending: did a round miss its exclusive locks? */
bool
PaxosExclusiveTablesPending(void)
{
	return exclusive_tables != NIL;
}

/*
 * PaxosLockExclusiveTables (worker, before applying) takes the ACCESS
 * EXCLUSIVE locks that a TRUNCATE or DDL round failed to get, waiting up
 * to a second, without holding the applier's lock: while it waits,
 * statements that hold locks on those tables can still catch up (see
 * LockApplier) and finish, so the lock is granted.  False if it was not.
 */
bool
PaxosLockExclusiveTables(void)
{
	ListCell   *lc;
	volatile bool ok = true;

	if (exclusive_tables == NIL)
		return true;
	SPI_connect();
	(void) set_config_option("lock_timeout", "1s", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	PG_TRY();
	{
		foreach(lc, exclusive_tables)
			if (SPI_execute(psprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE",
									 (char *) lfirst(lc)), false, 0) != SPI_OK_UTILITY)
				ok = false;
	}
	PG_FINALLY();
	{
		(void) set_config_option("lock_timeout", "0", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	}
	PG_END_TRY();
	SPI_finish();
	list_free_deep(exclusive_tables);
	exclusive_tables = NIL;
	return ok;
}

/*
 * TryApplyExclusive applies a round that needs an ACCESS EXCLUSIVE lock in
 * a subtransaction with a short lock_timeout; false (nothing done) if a
 * lock was not granted in time.
 */
static bool
TryApplyExclusive(const char *group_id, int64 round, const char *value)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool applied = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		(void) set_config_option("lock_timeout", "100ms", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
		ApplyCommittedRound(group_id, round, value);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		FreeErrorData(edata);
		applied = false;
		RememberExclusiveTables(value);
	}
	PG_END_TRY();
	return applied;
}

/*
 * ApplyChangesAsReplica applies a transaction entry with ordinary triggers
 * and foreign-key checks off (they ran on the origin) and capture off.
 */
static void
ApplyChangesAsReplica(const char *group_id, int64 round, const char *entry)
{
	int			save_nestlevel = NewGUCNestLevel();
	bool		save_applying = PaxosApplying;

	/* (already so while PaxosApplyUpTo runs: then this costs nothing) */
	(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	/*
	 * A local transaction that holds a row this round changes, while it
	 * waits for one we hold, has a snapshot older than the round: it would
	 * fail certification anyway.  Let the deadlock detector pick it, not
	 * the applier, by making the applier the last to look.
	 */
	(void) set_config_option("deadlock_timeout", "30s", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	PaxosApplying = true;
	PG_TRY();
	{
		PaxosApplyChanges(group_id, round, entry);
	}
	PG_FINALLY();
	{
		PaxosApplying = save_applying;
	}
	PG_END_TRY();
	AtEOXact_GUC(true, save_nestlevel);
}

/*
 * paxos_apply_upto (RPC, called by a node on itself): apply a group's log
 * up to max_round_num, in a transaction of its own; returns the last round
 * applied (less with stop_before_exclusive, see PaxosApplyUpTo).
 */
Datum
paxos_apply_upto(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		max_round = PaxosInt64Arg(fcinfo, 1, "max_round_num");
	bool		stop = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);

	/*
	 * Applied rounds and the cursor commit together: a crash that loses
	 * them leaves the rounds to apply again.  No need to wait for the flush.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	PG_RETURN_INT64(PaxosApplyUpTo(group_id, max_round,
								   stop ? APPLY_STOP_BEFORE_EXCLUSIVE : APPLY_YIELD_ON_LOCK));
}

/* OnApplied notes that paxos_apply_upto answered. */
static bool
OnApplied(void *arg, int host, PGresult *res, const char *error)
{
	ApplyCollector *ac = (ApplyCollector *) arg;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	ac->answered = true;
	ac->applied = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	return true;
}

/*
 * PaxosApplyThroughSelf has this node apply a group's log up to max_round in
 * a transaction of its own, committed when this returns; returns the last
 * round applied (see PaxosApplyUpTo for stop_before_exclusive).
 */
int64
PaxosApplyThroughSelf(const char *group_id, int64 max_round, bool stop_before_exclusive)
{
	PeerConnection *self = PaxosSelfPeer(group_id);
	char		round_str[32];
	const char *params[3];
	ApplyCollector ac = {false, -1};
	FanoutStats stats;

	snprintf(round_str, sizeof(round_str), INT64_FORMAT, max_round);
	params[0] = group_id;
	params[1] = round_str;
	params[2] = stop_before_exclusive ? "true" : "false";
	FanoutCall(&self, 1, RPC_APPLY, params, 3, PaxosTimeoutMs, OnApplied, &ac, &stats);
	if (!ac.answered)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not apply the log of paxos group \"%s\" on this node", group_id),
				 errdetail("%s", stats.first_error ? stats.first_error : "no answer")));
	return ac.applied;
}

/*
 * PaxosExecuteLogValue runs one log entry as SQL in a subtransaction; an error is
 * recorded in the round's error column instead of stopping the log, as the
 * pg_paxos README does.
 */
void
PaxosExecuteLogValue(const char *group_id, int64 round, const char *sql)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	ereport(DEBUG1, (errmsg("Executing: %s", sql)));
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		int			rc;

		/* a value runs as an ordinary statement, triggers and all */
		(void) set_config_option("session_replication_role", "origin", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
		rc = SPI_execute(sql, false, 0);

		if (rc < 0)
			elog(ERROR, "pg_paxos: could not execute log entry: %s",
				 SPI_result_code_string(rc));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		Oid			types[3] = {TEXTOID, INT8OID, TEXTOID};
		Datum		values[3];

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		values[0] = CStringGetTextDatum(group_id);
		values[1] = Int64GetDatum(round);
		values[2] = CStringGetTextDatum(edata->message);
		if (SPI_execute_with_args("UPDATE pgp_metadata.round SET error = $3"
								  " WHERE group_id = $1 AND round_num = $2",
								  3, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_paxos: could not record the error of round " INT64_FORMAT, round);
		ereport(DEBUG1, (errmsg("round " INT64_FORMAT " failed: %s", round, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

