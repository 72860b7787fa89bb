/*
 * point_write.c
 *    Which writes need no strong read first: an UPDATE or DELETE of one
 *    row of a replicated table, found by its whole primary key, that reads
 *    nothing but that row.
 *
 * Such a statement reads the row it writes and nothing else, and the row's
 * key is checked by certification: if another node changed the row in a
 * round this node had not applied, the transaction fails with 40001
 * instead of committing what it computed from the old row.  So catching
 * up first only saves a retry; with pg_paxos.point_writes = optimistic,
 * strong_read.c skips it for these writes when they are a transaction of
 * their own (a transaction block's later
 * statements read what its first one saw).  A write that finds no row may
 * have missed one a round it had not applied inserted: strong_read.c
 * checks that case after the statement.
 *
 * Everything else that could read another row or table disqualifies the
 * statement: a subquery, a join, a function that is not built in (or one
 * of the built-ins that run queries), triggers other than pg_paxos's own
 * and the internal ones of constraints (their reads are covered by
 * certification keys), rules, row-level security, CHECK constraints,
 * generated columns and domain-typed columns (which may call functions).
 */
#include "pg_paxos.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/transam.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* Built-in functions that run queries (their argument is a query, a cursor or a table). */
static const Oid query_running_builtins[] = {
	F_QUERY_TO_XML, F_QUERY_TO_XMLSCHEMA, F_QUERY_TO_XML_AND_XMLSCHEMA,
	F_CURSOR_TO_XML, F_CURSOR_TO_XMLSCHEMA, F_TABLE_TO_XML,
	F_TABLE_TO_XMLSCHEMA, F_TABLE_TO_XML_AND_XMLSCHEMA, F_SCHEMA_TO_XML,
	F_SCHEMA_TO_XMLSCHEMA, F_SCHEMA_TO_XML_AND_XMLSCHEMA, F_DATABASE_TO_XML,
	F_DATABASE_TO_XMLSCHEMA, F_DATABASE_TO_XML_AND_XMLSCHEMA,
	F_TS_STAT_TEXT, F_TS_STAT_TEXT_TEXT
};

/* Whether a function may be called by a point write (see the file header). */
static bool
UnsafeFunction(Oid funcid, void *context)
{
	int			i;

	if (funcid >= FirstGenbkiObjectId)
		return true;
	for (i = 0; i < lengthof(query_running_builtins); i++)
		if (funcid == query_running_builtins[i])
			return true;
	return false;
}

/* ReadsMore finds, in a plan's expressions, anything that reads other rows. */
static bool
ReadsMore(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink) || IsA(node, SubPlan) || IsA(node, AlternativeSubPlan) ||
		IsA(node, NextValueExpr))
		return true;
	if (check_functions_in_node(node, UnsafeFunction, NULL))
		return true;
	return expression_tree_walker(node, ReadsMore, context);
}

/* OnlyOwnRow: a relation whose writes run no code that reads elsewhere. */
static bool
OnlyOwnRow(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasrules ||
		rel->rd_rel->relrowsecurity)
		return false;
	if (desc->constr != NULL &&
		(desc->constr->num_check > 0 || desc->constr->has_generated_stored))
		return false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			return false;
	}
	for (i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];

		if (!t->tgisinternal && strcmp(t->tgname, "pg_paxos_capture") != 0 &&
			strcmp(t->tgname, "pg_paxos_capture_truncate") != 0)
			return false;
	}
	return true;
}

/*
 * KeyLookup: the scan under the write finds the row by the whole primary
 * key of relid: "column = value" on every key column, the values computed
 * from nothing that reads.
 */
static bool
KeyLookup(Plan *plan, Oid relid)
{
	Oid			indexid;
	List	   *quals;
	Relation	index;
	bool		covered[INDEX_MAX_KEYS] = {false};
	bool		ok;
	int			nkeys;
	int			i;
	ListCell   *lc;

	while (plan != NULL && IsA(plan, Result) && plan->lefttree != NULL)
		plan = plan->lefttree;	/* a projection over the scan */
	if (plan == NULL || !IsA(plan, IndexScan))
		return false;
	indexid = ((IndexScan *) plan)->indexid;
	quals = ((IndexScan *) plan)->indexqualorig;
	if (ReadsMore((Node *) quals, NULL) || ReadsMore((Node *) plan->qual, NULL))
		return false;

	index = index_open(indexid, AccessShareLock);
	nkeys = index->rd_index->indnkeyatts;
	ok = index->rd_index->indisprimary && index->rd_index->indrelid == relid;
	foreach(lc, quals)
	{
		OpExpr	   *op = (OpExpr *) lfirst(lc);
		Var		   *var;
		bool		matched = false;

		if (!ok || !IsA(op, OpExpr) || list_length(op->args) != 2 ||
			!IsA(linitial(op->args), Var))
		{
			ok = false;
			break;
		}
		var = (Var *) linitial(op->args);
		for (i = 0; i < nkeys; i++)
			if (index->rd_index->indkey.values[i] == var->varattno &&
				get_op_opfamily_strategy(op->opno, index->rd_opfamily[i]) == BTEqualStrategyNumber)
				matched = covered[i] = true;
		ok = matched;
	}
	for (i = 0; ok && i < nkeys; i++)
		ok = covered[i];
	index_close(index, AccessShareLock);
	return ok;
}

/*
 * PaxosPointWriteGroup: if the statement is a point write of a replicated
 * table (see the file header), the table's group; NULL otherwise.
 */
const char *
PaxosPointWriteGroup(PlannedStmt *stmt)
{
	ModifyTable *mt;
	RangeTblEntry *rte;
	Relation	rel;
	const char *group_id;
	bool		ok;

	if ((stmt->commandType != CMD_UPDATE && stmt->commandType != CMD_DELETE) ||
		stmt->hasModifyingCTE || stmt->subplans != NIL ||
		stmt->planTree == NULL || !IsA(stmt->planTree, ModifyTable) ||
		list_length(stmt->rtable) != 1)
		return NULL;
	mt = (ModifyTable *) stmt->planTree;
	rte = linitial_node(RangeTblEntry, stmt->rtable);
	if (rte->rtekind != RTE_RELATION || rte->inh ||
		(group_id = PaxosReplicatedGroup(rte->relid)) == NULL)
		return NULL;
	if (mt->onConflictSet != NIL || mt->plan.initPlan != NIL ||
		mt->plan.lefttree == NULL || mt->plan.lefttree->initPlan != NIL ||
		ReadsMore((Node *) mt->returningLists, NULL))
		return NULL;

	rel = relation_open(rte->relid, AccessShareLock);
	ok = OnlyOwnRow(rel) && KeyLookup(mt->plan.lefttree, rte->relid);
	relation_close(rel, AccessShareLock);
	if (!ok)
		return NULL;

	/* what the statement computes: the new values */
	if (ReadsMore((Node *) mt->plan.lefttree->targetlist, NULL))
		return NULL;
	return group_id;
}
