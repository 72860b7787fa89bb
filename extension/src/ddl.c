/*
 * ddl.c
 *    DDL on replicated tables: captured into the transaction's log entry
 *    and replayed in log order on every node (the utility hook).
 *
 * ALTER TABLE (including RENAME), CREATE INDEX, DROP INDEX and DROP TABLE
 * on a replicated table are replicated as their statement text, with
 * table-level conflict keys, so they are ordered against every concurrent
 * write to the table.  What cannot run inside the applier's transaction
 * (CREATE INDEX CONCURRENTLY) is refused with a clear error.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static Oid	ReplicatedTarget(Node *parsetree, bool *is_drop);
static void PaxosProcessUtility(PlannedStmt *pstmt, const char *queryString,
								bool readOnlyTree, ProcessUtilityContext context,
								ParamListInfo params, QueryEnvironment *queryEnv,
								DestReceiver *dest, QueryCompletion *qc);

/*
 * ReplicatedTarget returns the replicated table a utility statement
 * changes, or InvalidOid.
 */
static Oid
ReplicatedTarget(Node *parsetree, bool *is_drop)
{
	Oid			relid = InvalidOid;

	*is_drop = false;
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

				if (stmt->objtype == OBJECT_TABLE)
					relid = RangeVarGetRelid(stmt->relation, NoLock, true);
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if (stmt->relation != NULL &&
					(stmt->renameType == OBJECT_TABLE || stmt->renameType == OBJECT_COLUMN ||
					 stmt->renameType == OBJECT_TABCONSTRAINT))
					relid = RangeVarGetRelid(stmt->relation, NoLock, true);
				break;
			}
		case T_IndexStmt:
			{
				IndexStmt *stmt = (IndexStmt *) parsetree;

				relid = RangeVarGetRelid(stmt->relation, NoLock, true);
				if (OidIsValid(relid) && PaxosReplicatedGroup(relid) != NULL && stmt->concurrent)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("CREATE INDEX CONCURRENTLY is not supported on replicated tables"),
							 errhint("Use CREATE INDEX: it is replicated in log order.")));
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;
				ListCell   *lc;

				if (stmt->removeType != OBJECT_TABLE && stmt->removeType != OBJECT_INDEX)
					break;
				foreach(lc, stmt->objects)
				{
					RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
					Oid			oid = RangeVarGetRelid(rv, NoLock, true);

					if (OidIsValid(oid) && stmt->removeType == OBJECT_INDEX)
						oid = IndexGetRelation(oid, true);
					if (OidIsValid(oid) && PaxosReplicatedGroup(oid) != NULL)
					{
						if (list_length(stmt->objects) > 1)
							ereport(ERROR,
									(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
									 errmsg("drop replicated tables and their indexes one per statement")));
						relid = oid;
						*is_drop = stmt->removeType == OBJECT_TABLE;
					}
				}
				break;
			}
		default:
			break;
	}
	return relid;
}

/*
 * PaxosProcessUtility captures DDL on replicated tables (see the file
 * header), then runs the statement as usual.
 */
static void
PaxosProcessUtility(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	bool		is_drop = false;
	const char *group_id = NULL;

	PaxosNoteUtilityStatement(pstmt->utilityStmt);
	if (!PaxosApplying && IsTransactionState() &&
		IsA(pstmt->utilityStmt, TruncateStmt) &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()))
	{
		/*
		 * TRUNCATE is captured by the trigger, but conflicts with every
		 * write to its table as DDL does: base it on the latest round too.
		 */
		ListCell   *lc;

		foreach(lc, ((TruncateStmt *) pstmt->utilityStmt)->relations)
		{
			Oid			relid = RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true);
			const char *truncated = OidIsValid(relid) ? PaxosReplicatedGroup(relid) : NULL;

			if (truncated != NULL)
				PaxosSyncGroup(truncated, true);
		}
	}
	if (!PaxosApplying && IsTransactionState())
	{
		Oid			relid = ReplicatedTarget(pstmt->utilityStmt, &is_drop);

		if (OidIsValid(relid))
			group_id = PaxosReplicatedGroup(relid);
		if (group_id != NULL)
		{
			char	   *sql;
			char	   *relname;

			/*
			 * DDL conflicts with every concurrent write to its table: base
			 * it on the latest round, or it would fail certification
			 * against writes this node merely has not applied yet.
			 */
			if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
				PaxosSyncGroup(group_id, true);
			sql = pstmt->stmt_location >= 0 && pstmt->stmt_len > 0
				? pnstrdup(queryString + pstmt->stmt_location, pstmt->stmt_len)
				: pstrdup(queryString + Max(pstmt->stmt_location, 0));
			relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
															 get_rel_name(relid));

			PaxosCaptureStatement(group_id, relname, sql);
		}
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	if (group_id != NULL && is_drop)
		PaxosForgetDroppedTables();
}

/* PaxosInitDdl installs the utility hook (from _PG_init). */
void
PaxosInitDdl(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = PaxosProcessUtility;
}
