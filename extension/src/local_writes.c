/*
 * local_writes.c
 *    Whether a transaction wrote anything that only this node's own commit
 *    makes durable: a table that is not replicated, a catalog (any utility
 *    statement), a large object.
 *
 * A transaction whose writes are all in a log entry that a majority has
 * accepted durably needs no WAL flush of its own at commit: if a crash loses
 * the local commit, it loses the row that says the entry is applied here
 * with it, and the applier applies the entry from the log (capture.c,
 * apply.c).  Its commit then skips the flush, as synchronous_commit = off
 * would, and the WAL writer flushes it shortly after: one fsync less on
 * the way to every acknowledgement.  Anything else the transaction wrote
 * would be lost with that commit, so such a transaction flushes as
 * configured.
 *
 * Writes are seen where they start: the executor (INSERT, UPDATE, DELETE,
 * MERGE, also from functions and triggers), utility statements (COPY, DDL,
 * CALL, DO: any, except those that only run the executor or change the
 * session), and large objects, whose functions write without the executor
 * but hold a lock on pg_largeobject until the end of the transaction.
 * Temporary and unlogged tables do not count: a crash empties them anyway.
 * Not seen: setval() and logical decoding messages, which are not
 * transactional, and C extensions that write some other way;
 * pg_paxos.flush_local_commits = on keeps every flush for those.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_largeobject.h"
#include "miscadmin.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "replication/syncrep.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

bool		PaxosFlushLocalCommits = false;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/* The current transaction wrote something outside the log. */
static bool wrote_locally = false;

/*
 * NeedsOwnFlush: would losing this relation's writes lose data?  The
 * replicated tables, the usual case, are told apart first, without a
 * catalog lookup.
 */
static bool
NeedsOwnFlush(Oid relid)
{
	if (PaxosReplicatedGroup(relid) != NULL)
		return false;
	return get_rel_persistence(relid) == RELPERSISTENCE_PERMANENT;
}

/* LocalWritesExecutorStart notes a statement that writes a table outside the log. */
static void
LocalWritesExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;

	if (!wrote_locally && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		(queryDesc->operation != CMD_SELECT || stmt->hasModifyingCTE))
	{
		ListCell   *lc;

		foreach(lc, stmt->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), stmt->rtable);

			if (NeedsOwnFlush(rte->relid))
			{
				wrote_locally = true;
				break;
			}
		}
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * OnlyRunsExecutor: utility statements that write nothing themselves (what
 * they execute goes through the executor hook) or only change the session.
 */
static bool
OnlyRunsExecutor(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_TransactionStmt:
		case T_VariableSetStmt:
		case T_VariableShowStmt:
		case T_PrepareStmt:
		case T_ExecuteStmt:
		case T_DeallocateStmt:
		case T_DeclareCursorStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_ExplainStmt:
		case T_LockStmt:
			return true;
		default:
			return false;
	}
}

/*
 * PaxosNoteUtilityStatement notes a utility statement that may write
 * (ddl.c's ProcessUtility hook, the extension's one, calls it first).
 */
void
PaxosNoteUtilityStatement(Node *parsetree)
{
	if (!OnlyRunsExecutor(parsetree))
		wrote_locally = true;
}

/* LocalWritesXactCallback starts every transaction with a clean slate. */
static void
LocalWritesXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		wrote_locally = false;
}

/*
 * PaxosSkipLocalFlush makes the current commit skip its WAL flush when
 * the log holds all it wrote (see the file header).  Call it once the
 * entry is accepted, before writing anything else.  With a synchronous
 * standby of this server (synchronous_standby_names) the commit keeps
 * waiting for it as configured.
 */
void
PaxosSkipLocalFlush(void)
{
	LOCKTAG		large_objects;

	if (wrote_locally || PaxosFlushLocalCommits ||
		synchronous_commit == SYNCHRONOUS_COMMIT_OFF ||
		(SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0'))
		return;
	SET_LOCKTAG_RELATION(large_objects, MyDatabaseId, LargeObjectRelationId);
	if (LockHeldByMe(&large_objects, RowExclusiveLock))
		return;
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

/* PaxosInitLocalWrites installs the hooks (at load). */
void
PaxosInitLocalWrites(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = LocalWritesExecutorStart;
	RegisterXactCallback(LocalWritesXactCallback, NULL);
}
