/*
 * apply_direct.c
 *    Applying an UPDATE or DELETE of a row of a table with a primary key
 *    straight through the executor's routines for logical replication
 *    (find the row by its key, lock it, update or delete it, keep the
 *    indexes and constraints), without planning and running an SQL
 *    statement for each row.
 *
 * The row images the log carries become tuples through
 * jsonb_populate_record, called directly: the same conversion the SQL path
 * (apply_rows.c) uses, so both read a value the same way.  Stored
 * generated columns are computed again, as the SQL path does; ordinary
 * triggers do not fire (the applier runs as a replica), those enabled
 * ALWAYS do.  Tables this does not cover (no primary key, partitioned) go
 * the SQL way.
 */
#include "pg_paxos.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* One table being applied to: its executor state, kept for a run of changes. */
struct PaxosDirectTable
{
	Relation	rel;
	Oid			pkey;
	EState	   *estate;
	ResultRelInfo *rri;
	EPQState	epq;
	TupleTableSlot *search;		/* the old image (its key matters) */
	TupleTableSlot *found;		/* the row as stored, locked */
	TupleTableSlot *next;		/* the new image */
	FmgrInfo	populate;		/* jsonb_populate_record for the row type */
	MemoryContext row_context;	/* what one change allocates */
};

/*
 * PaxosDirectStart prepares to apply changes to a table (locked already by
 * the caller), or returns NULL if the table must go the SQL way.
 */
PaxosDirectTable *
PaxosDirectStart(Oid relid)
{
	Relation	rel = table_open(relid, NoLock);
	PaxosDirectTable *t;
	RangeTblEntry *rte;
	Oid			rowtype = RelationGetForm(rel)->reltype;
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	FuncExpr   *call;

	if (rel->rd_rel->relkind != RELKIND_RELATION || !OidIsValid(pkey) ||
		!OidIsValid(rowtype))
	{
		table_close(rel, NoLock);
		return NULL;
	}
	t = palloc0(sizeof(PaxosDirectTable));
	t->rel = rel;
	t->pkey = pkey;
	t->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(t->estate, list_make1(rte));
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, rel, 1, NULL, 0);
	/* so that AFTER triggers find it, instead of opening the table again */
	t->estate->es_opened_result_relations = list_make1(t->rri);
	ExecOpenIndices(t->rri, false);
	t->search = ExecInitExtraTupleSlot(t->estate, RelationGetDescr(rel), &TTSOpsVirtual);
	t->next = ExecInitExtraTupleSlot(t->estate, RelationGetDescr(rel), &TTSOpsVirtual);
	t->found = table_slot_create(rel, &t->estate->es_tupleTable);

	/* its first argument's type (a NULL of the row type) says what to make */
	call = makeFuncExpr(F_JSONB_POPULATE_RECORD, rowtype,
						list_make2(makeNullConst(rowtype, -1, InvalidOid),
								   makeNullConst(JSONBOID, -1, InvalidOid)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	fmgr_info(F_JSONB_POPULATE_RECORD, &t->populate);
	fmgr_info_set_expr((Node *) call, &t->populate);
	t->row_context = AllocSetContextCreate(CurrentMemoryContext, "pg_paxos apply row",
										   ALLOCSET_SMALL_SIZES);
	AfterTriggerBeginQuery();
	return t;
}

/* StoreImage puts a row image into a slot of the table's row type. */
static void
StoreImage(PaxosDirectTable *t, Jsonb *image, TupleTableSlot *slot)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		row;
	HeapTupleData tuple;

	InitFunctionCallInfoData(*fcinfo, &t->populate, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = (Datum) 0;
	fcinfo->args[0].isnull = true;
	fcinfo->args[1].value = JsonbPGetDatum(image);
	fcinfo->args[1].isnull = false;
	row = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "pg_paxos: a row image of %s is null", RelationGetRelationName(t->rel));

	tuple.t_len = HeapTupleHeaderGetDatumLength(DatumGetHeapTupleHeader(row));
	tuple.t_data = DatumGetHeapTupleHeader(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	ExecClearTuple(slot);
	heap_deform_tuple(&tuple, slot->tts_tupleDescriptor, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
}

/*
 * PaxosDirectApply updates ('U') or deletes ('D') the row the old image
 * names by its primary key; false if there is no such row.
 */
bool
PaxosDirectApply(PaxosDirectTable *t, char op, Jsonb *old_row, Jsonb *new_row)
{
	bool		found;
	MemoryContext outer = MemoryContextSwitchTo(t->row_context);

	t->estate->es_output_cid = GetCurrentCommandId(true);
	EvalPlanQualInit(&t->epq, t->estate, NULL, NIL, -1);
	StoreImage(t, old_row, t->search);
	found = RelationFindReplTupleByIndex(t->rel, t->pkey, LockTupleExclusive,
										 t->search, t->found);
	if (found && op == 'U')
	{
		StoreImage(t, new_row, t->next);
		ExecSimpleRelationUpdate(t->rri, t->estate, &t->epq, t->found, t->next);
	}
	else if (found)
		ExecSimpleRelationDelete(t->rri, t->estate, &t->epq, t->found);
	EvalPlanQualEnd(&t->epq);
	ExecClearTuple(t->search);
	ExecClearTuple(t->next);
	MemoryContextSwitchTo(outer);
	MemoryContextReset(t->row_context);
	/* the next change may be to the row this one wrote */
	CommandCounterIncrement();
	return found;
}

/* PaxosDirectEnd fires what triggers queued and lets the table go. */
void
PaxosDirectEnd(PaxosDirectTable *t)
{
	AfterTriggerEndQuery(t->estate);
	ExecCloseResultRelations(t->estate);
	ExecResetTupleTable(t->estate->es_tupleTable, false);
	FreeExecutorState(t->estate);
	table_close(t->rel, NoLock);
	MemoryContextDelete(t->row_context);
	pfree(t);
}
