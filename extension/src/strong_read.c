/*
 * strong_read.c
 *    pg_paxos.consistency_model = strong: before a statement on replicated
 *    tables, this node applies every round that was chosen when the
 *    statement began, so a write acknowledged anywhere is seen.
 *
 * Catching up happens at parse analysis, and, for a prepared statement
 * executed again, when it starts executing (under READ COMMITTED with a
 * new snapshot).  It is done once per statement, and only by a transaction
 * that has not written yet: one that holds row locks could wait for the
 * applier, which would wait for its locks.
 *
 * With pg_paxos.point_writes = optimistic, a point write that is a
 * transaction of its own (point_write.c) does not catch up: certification
 * fails it if the row it read was old (even when it only follows a write
 * of the same row, on another node or not yet applied here).  If it found
 * no row, it catches up after the fact, and fails with 40001 if that
 * applied anything (the row may have been in what it missed).  After a
 * transaction with such a write fails, the session's next statement
 * catches up first, so a retry is not refused for the same reason again.
 *
 * Under pg_paxos.point_writes = strong (the default), a point write on the
 * node that leads its group does not ask its peers either: every commit
 * acknowledged in steady state went through this node's batcher, so what
 * it knows decided is what the client can have seen acknowledged, and it
 * waits only until that is applied here.  A round it does not know of
 * (another node took over meanwhile) is caught by certification, as
 * above, with 40001 rather than a result computed from an old row.
 */
#include "pg_paxos.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

int			PaxosConsistencyModel = PAXOS_CONSISTENCY_STRONG;
int			PaxosPointWrites = PAXOS_CONSISTENCY_STRONG;

/*
 * How long a statement waits for the background applier to reach the
 * round it needs before it applies through its own acceptor: the round may
 * be in flight on the leader (its confirmation comes within a round trip),
 * or never confirmed (a leader died), which only Paxos settles.
 */
#define STRONG_READ_WAIT_MS 100

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static bool strong_read_active = false;

/* The point write running without catching up, if any (see the header). */
static QueryDesc *point_write = NULL;
static char *point_write_group = NULL;
static int64 point_write_applied = -1;	/* this node's applied round before it */

/* A transaction ran a point write so; if it fails, catch up next time. */
static bool point_write_in_xact = false;
static bool catch_up_next = false;

/* Start time of the statement last caught up for. */
static TimestampTz synced_statement = 0;

typedef struct ReadGroups
{
	List	   *groups;			/* char * of the groups a query reads */
} ReadGroups;

static bool FindReplicatedTables(Node *node, ReadGroups *rg);
static void StrongReadHook(ParseState *pstate, Query *query, JumbleState *jstate);
static void StrongExecutorStart(QueryDesc *queryDesc, int eflags);
static void StrongExecutorEnd(QueryDesc *queryDesc);
static void SyncGroups(List *groups, bool may_apply_here);
static bool MayBePointWrite(CmdType command, const char *source, List *groups);
static bool PointWriteReady(const char *group_id);
static void RefreshSnapshot(QueryDesc *queryDesc);

/* FindReplicatedTables collects the groups of the replicated tables a query reads. */
static bool
FindReplicatedTables(Node *node, ReadGroups *rg)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
		{
			const char *group_id = PaxosReplicatedGroup(rte->relid);

			if (group_id != NULL)
				rg->groups = list_append_unique(rg->groups, makeString(pstrdup(group_id)));
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, FindReplicatedTables, rg,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, FindReplicatedTables, rg);
}

/*
 * PaxosSyncGroup applies, before a statement, every round of a group that
 * was chosen when it began (the highest round a majority reports).  The
 * statement may already hold locks on its tables (parse analysis takes
 * them), so a TRUNCATE or DDL round, which another backend would apply
 * waiting for us while we wait for it, is applied here, in this
 * transaction (rare), when may_apply_here; the rest by the background
 * applier, which it waits for (apply_progress.c), or, if that does not
 * come in time, by our own acceptor, in its transaction.  A statement that
 * has its target table open (an INSERT, UPDATE or DELETE being analysed)
 * cannot apply here; if the others did not get there either, it fails
 * with 40001 rather than go on from an older state: certification catches
 * a row it read that changed since, but not a row it did not find
 * (tests/cluster/test_replication_recovery.py lost an update so: a
 * transaction's UPDATE found no row that an acknowledged INSERT had
 * made).  A retry finds the node further on, and holds no lock that the
 * applier waits for.
 */
void
PaxosSyncGroup(const char *group_id, bool may_apply_here)
{
	PaxosSavedUser saved;

	PaxosBecomeSuperuser(&saved);
	PG_TRY();
	{
		int64		target;
		GroupInfo	group;

		PaxosAwaitSnapshot(group_id);
		target = PaxosSharedGroupRound(group_id);

		/* already there (the usual case on a busy node): nothing to do */
		if (PaxosAppliedHere(group_id) < target)
		{
			int64		applied;

			SPI_connect();
			GroupLoadOrError(group_id, &group);
			SPI_finish();
			if (group.last_applied_round < target &&
				!PaxosWaitApplied(group_id, target, STRONG_READ_WAIT_MS) &&
				(applied = PaxosApplyThroughSelf(group_id, target, true)) < target)
			{
				if (!may_apply_here)
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("this node could not catch up with paxos group \"%s\" before the statement",
									group_id),
							 errdetail("It has applied the log up to round " INT64_FORMAT
									   "; the statement needs round " INT64_FORMAT ".",
									   applied, target),
							 errhint("Retry the transaction.")));
				(void) PaxosApplyUpTo(group_id, target, APPLY_ALL);
			}
		}
	}
	PG_FINALLY();
	{
		PaxosRestoreUser(&saved);
	}
	PG_END_TRY();
}

/*
 * StrongReadHook makes a statement on replicated tables linearizable: with
 * pg_paxos.consistency_model = strong, before the statement takes its
 * snapshot, this node applies every round that was chosen when the
 * statement began (the highest round a majority reports).  For statements
 * of a transaction that has written already, see below.
 */
static void
StrongReadHook(ParseState *pstate, Query *query, JumbleState *jstate)
{
	ReadGroups	rg = {NIL};

	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (PaxosConsistencyModel != PAXOS_CONSISTENCY_STRONG || PaxosApplying ||
		strong_read_active || !IsTransactionState())
		return;

	/*
	 * Only a transaction that has not written yet: one that holds row locks
	 * could wait here for the applier, which would wait for its locks.
	 * Later statements of a writing transaction read what it has seen.
	 */
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;
	(void) FindReplicatedTables((Node *) query, &rg);
	if (rg.groups == NIL)
		return;
	if (MayBePointWrite(query->commandType, pstate->p_sourcetext, rg.groups))
		return;					/* decided on its plan, when it starts */

	SyncGroups(rg.groups, query->commandType == CMD_SELECT);
}

/*
 * MayBePointWrite: a statement of this kind on these groups, now, could
 * skip catching up if its plan is a point write (the plan decides, at
 * executor start): under point_writes = optimistic, or on the node that
 * leads its group (see the file header).  Only
 * the client's own statement (its text is the one the client sent, or a
 * copy of it for a prepared statement: not a statement of a function,
 * procedure or DO block, whose later statements would read without
 * catching up), outside a transaction block, and under
 * READ COMMITTED: there the executor start's new snapshot sees what
 * catching up applied, if it has to.
 */
static bool
MayBePointWrite(CmdType command, const char *source, List *groups)
{
	PaxosLeaderInfo leader;

	return (command == CMD_UPDATE || command == CMD_DELETE) && !catch_up_next &&
		source != NULL && debug_query_string != NULL &&
		(source == debug_query_string || strcmp(source, debug_query_string) == 0) &&
		!IsTransactionBlock() && !IsolationUsesXactSnapshot() &&
		(PaxosPointWrites == PAXOS_CONSISTENCY_OPTIMISTIC ||
		 (list_length(groups) == 1 &&
		  PaxosKnownLeader(strVal(linitial(groups)), &leader) && leader.is_self));
}

/*
 * PointWriteReady: a point write of a group may go ahead without catching
 * up: under point_writes = optimistic at once; otherwise (this node leads
 * the group) once every round this node knows decided is applied here,
 * which it waits for as a strong read would.
 */
static bool
PointWriteReady(const char *group_id)
{
	return PaxosPointWrites == PAXOS_CONSISTENCY_OPTIMISTIC ||
		PaxosWaitApplied(group_id, PaxosDecidedThrough(group_id), STRONG_READ_WAIT_MS);
}

/*
 * RefreshSnapshot gives a statement that waited for rounds to be applied a
 * snapshot that sees them, under READ COMMITTED (under REPEATABLE READ the
 * transaction's first snapshot is the read).
 */
static void
RefreshSnapshot(QueryDesc *queryDesc)
{
	if (!IsolationUsesXactSnapshot() && queryDesc->snapshot != NULL)
	{
		Snapshot	fresh = RegisterSnapshot(GetTransactionSnapshot());

		UnregisterSnapshot(queryDesc->snapshot);
		queryDesc->snapshot = fresh;
	}
}

/*
 * SyncGroups catches up the groups a statement reads (PaxosSyncGroup),
 * once per statement: queries run while catching up, and the statement's
 * later executor starts, do not do it again.
 */
static void
SyncGroups(List *groups, bool may_apply_here)
{
	ListCell   *lc;

	strong_read_active = true;
	PG_TRY();
	{
		foreach(lc, groups)
			PaxosSyncGroup(strVal(lfirst(lc)), may_apply_here);
	}
	PG_FINALLY();
	{
		strong_read_active = false;
	}
	PG_END_TRY();
	synced_statement = GetCurrentStatementStartTimestamp();
	catch_up_next = false;
}

/*
 * StrongExecutorStart covers what parse analysis does not see: a prepared
 * statement executed again (extended protocol, EXECUTE).  A statement on
 * replicated tables that was not caught up is caught up now (a write only
 * up to a TRUNCATE or DDL round, as at parse analysis); under READ COMMITTED it then gets a new snapshot, taken after
 * (under REPEATABLE READ the transaction's first snapshot is the read).
 */
static void
StrongExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (PaxosConsistencyModel == PAXOS_CONSISTENCY_STRONG && !PaxosApplying &&
		!strong_read_active && IsTransactionState() && !IsParallelWorker() &&
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		synced_statement != GetCurrentStatementStartTimestamp() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()))
	{
		List	   *groups = NIL;
		const char *point_group = NULL;
		ListCell   *lc;

		foreach(lc, queryDesc->plannedstmt->rtable)
		{
			RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
			const char *group_id;

			if (rte->rtekind == RTE_RELATION &&
				(group_id = PaxosReplicatedGroup(rte->relid)) != NULL)
				groups = list_append_unique(groups, makeString(pstrdup(group_id)));
		}
		if (groups != NIL && MayBePointWrite(queryDesc->operation, queryDesc->sourceText, groups))
			point_group = PaxosPointWriteGroup(queryDesc->plannedstmt);
		if (point_group != NULL && !PointWriteReady(point_group))
			point_group = NULL; /* catch up as any other statement */
		if (point_group != NULL)
		{
			/* certification stands for catching up (see the file header) */
			point_write = queryDesc;
			point_write_in_xact = true;
			point_write_applied = PaxosAppliedHere(point_group);
			point_write_group = MemoryContextStrdup(TopTransactionContext, point_group);
			if (PaxosPointWrites != PAXOS_CONSISTENCY_OPTIMISTIC)
				RefreshSnapshot(queryDesc);
		}
		else if (groups != NIL)
		{
			/* a write has its target table locked already: see PaxosSyncGroup */
			SyncGroups(groups, queryDesc->operation == CMD_SELECT);
			RefreshSnapshot(queryDesc);
		}
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * StrongExecutorEnd checks a point write that found no row (see the file
 * header): it catches up now, and if that applied anything, the row may
 * have been there, so the statement fails with a serialization failure.
 */
static void
StrongExecutorEnd(QueryDesc *queryDesc)
{
	bool		check = queryDesc == point_write && queryDesc->estate != NULL &&
		queryDesc->estate->es_processed == 0;

	if (queryDesc == point_write)
		point_write = NULL;
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (check)
	{
		SyncGroups(list_make1(makeString(point_write_group)), false);
		if (PaxosAppliedHere(point_write_group) > point_write_applied)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access: the row was not found on this node, which had not yet applied every round of paxos group \"%s\"",
							point_write_group),
					 errdetail("The statement went ahead from round " INT64_FORMAT " without catching up first.",
							   point_write_applied),
					 errhint("The transaction might succeed if retried.")));
	}
}

/* StrongXactCallback: after a failed point write, catch up next time. */
static void
StrongXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT && point_write_in_xact)
		catch_up_next = true;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT)
	{
		point_write_in_xact = false;
		point_write = NULL;
	}
}

/* PaxosInitStrongReads installs the strong-read hooks (from _PG_init). */
void
PaxosInitStrongReads(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = StrongReadHook;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = StrongExecutorStart;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = StrongExecutorEnd;
	RegisterXactCallback(StrongXactCallback, NULL);
}
