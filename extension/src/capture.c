/*
 * capture.c
 *    Capture the row changes of a transaction on replicated tables, and at
 *    commit turn them into one certified log entry.
 *
 * Capture is a C trigger (AFTER ROW for INSERT/UPDATE/DELETE, AFTER
 * STATEMENT for TRUNCATE) enabled ALWAYS on every replicated table, so it
 * sees writes from any source: plain statements, COPY, PL/pgSQL, triggers,
 * prepared statements.  Each change keeps the subtransaction it was made
 * in; ROLLBACK TO SAVEPOINT drops it.  The log carries values (row images as
 * JSON), never statements, so now(), random(), sequences and defaults give
 * every node the origin's values.
 *
 * At pre-commit the changes become one entry {x, check, write, changes}:
 * x is the round the transaction's snapshot had applied; check and write
 * are conflict keys (every unique key of every written row, the referenced
 * key of each foreign key, and table-level keys for TRUNCATE, DDL and tables
 * without a primary key).  The entry is appended, certified by this node's
 * own acceptor in log order (certify.c), and the transaction either
 * commits, marking its round applied here in the same local transaction,
 * or fails with SQLSTATE 40001 naming the conflicting round.  A transaction
 * that writes no replicated table does none of this.
 */
#include "pg_paxos.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "postmaster/postmaster.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(paxos_capture_trigger);

/* One captured change, in TopTransactionContext. */
typedef struct Change
{
	SubTransactionId subxid;
	char	   *json;			/* {"op":..., ...} */
	List	   *check;			/* conflict keys to check (char *) */
	List	   *write;			/* conflict keys this change writes */
} Change;

/* The transaction's captured state. */
static List *changes = NIL;
static char *txn_group = NULL;
static int64 txn_x = -1;
static bool committing = false;

bool		PaxosApplying = false;

static void CaptureXactCallback(XactEvent event, void *arg);
static void CaptureSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);
static void Reset(void);
static void BeginCapture(const char *group_id);
static char *RowJson(Relation rel, HeapTuple tuple);
static void CommitChanges(void);

/*
 * PaxosOriginId names this server in the entries it originates: node id,
 * system identifier and port, unique even where node ids are not set.
 */
const char *
PaxosOriginId(void)
{
	static char *origin = NULL;

	if (origin == NULL)
		origin = MemoryContextStrdup(TopMemoryContext,
									 psprintf("%s/" UINT64_FORMAT "/%d", PaxosNodeId,
											  GetSystemIdentifier(), PostPortNumber));
	return origin;
}

/*
 * This server's life: a new one begins whenever shared memory is made
 * afresh (start, or restart after a crash).  A transaction id means the
 * same transaction only within one life: a crash loses the ids that never
 * reached the WAL, and the restarted server hands them out again.
 */
static uint64 *incarnation = NULL;

Size
PaxosIncarnationShmemSize(void)
{
	return MAXALIGN(sizeof(uint64));
}

/* PaxosIncarnationShmemInit starts a new life when shared memory is new. */
void
PaxosIncarnationShmemInit(void)
{
	bool		found;

	incarnation = ShmemInitStruct("pg_paxos incarnation", PaxosIncarnationShmemSize(), &found);
	if (!found)
		*incarnation = (uint64) GetCurrentTimestamp();
}

/* PaxosIncarnation names this server's life in the entries it originates. */
uint64
PaxosIncarnation(void)
{
	return *incarnation;
}

/* PaxosInitCapture registers the transaction callbacks (from _PG_init). */
void
PaxosInitCapture(void)
{
	RegisterXactCallback(CaptureXactCallback, NULL);
	RegisterSubXactCallback(CaptureSubXactCallback, NULL);
}

/* Reset forgets the transaction's changes (their memory goes with it). */
static void
Reset(void)
{
	changes = NIL;
	txn_group = NULL;
	txn_x = -1;
	committing = false;
}

/*
 * BeginCapture starts capturing for a group in this transaction, and
 * records x: the log position the transaction's writes are based on.  It is
 * read with the snapshot of the first writing statement, so it never
 * exceeds what that statement saw (a conservative x can only cause a
 * spurious conflict, never a missed one).
 */
static void
BeginCapture(const char *group_id)
{
	GroupInfo	group;
	PaxosSavedUser saved;

	if (txn_group != NULL)
	{
		if (strcmp(txn_group, group_id) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a transaction can write the tables of one paxos group only"),
					 errdetail("It wrote tables of groups \"%s\" and \"%s\".", txn_group, group_id)));
		return;
	}
	PaxosBecomeSuperuser(&saved);
	PG_TRY();
	{
		SPI_connect();
		GroupLoadOrError(group_id, &group);
		SPI_finish();
	}
	PG_FINALLY();
	{
		PaxosRestoreUser(&saved);
	}
	PG_END_TRY();
	txn_group = MemoryContextStrdup(TopTransactionContext, group_id);
	txn_x = group.last_applied_round;
}

/* RowJson is a row as JSON (row_to_json), the form the log carries. */
static char *
RowJson(Relation rel, HeapTuple tuple)
{
	Datum		row = heap_copy_tuple_as_datum(tuple, RelationGetDescr(rel));

	return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json, row)));
}

/*
 * PaxosCaptureStatement records a DDL statement on a replicated table, to be
 * replayed in log order with the transaction's other changes (utility hook).
 */
void
PaxosCaptureStatement(const char *group_id, const char *relname, const char *sql)
{
	MemoryContext old;
	Change	   *c;
	StringInfoData buf;

	if (PaxosApplying)
		return;
	BeginCapture(group_id);
	old = MemoryContextSwitchTo(TopTransactionContext);
	c = palloc0(sizeof(Change));
	c->subxid = GetCurrentSubTransactionId();
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"op\":\"S\",\"rel\":");
	escape_json(&buf, relname);
	appendStringInfoString(&buf, ",\"sql\":");
	escape_json(&buf, sql);
	appendStringInfoChar(&buf, '}');
	c->json = buf.data;
	PaxosAddTableKeys(relname, true, &c->check, &c->write);
	changes = lappend(changes, c);
	MemoryContextSwitchTo(old);
}

/*
 * paxos_capture_trigger records one row change (or a TRUNCATE) of a
 * replicated table in the transaction's change list.
 */
Datum
paxos_capture_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	const char *group_id;
	char	   *relname;
	MemoryContext old;
	Change	   *c;
	StringInfoData buf;
	bool		has_pkey;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("paxos_capture_trigger can only be called as a trigger")));
	if (PaxosApplying)
		return PointerGetDatum(NULL);
	if (committing)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("replicated tables cannot be written while the transaction commits"),
				 errhint("Deferred triggers that write replicated tables are not supported.")));

	rel = td->tg_relation;
	group_id = PaxosReplicatedGroup(RelationGetRelid(rel));
	if (group_id == NULL)
		return PointerGetDatum(NULL);	/* no longer replicated */
	BeginCapture(group_id);

	old = MemoryContextSwitchTo(TopTransactionContext);
	relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										 RelationGetRelationName(rel));
	has_pkey = OidIsValid(RelationGetPrimaryKeyIndex(rel));
	c = palloc0(sizeof(Change));
	c->subxid = GetCurrentSubTransactionId();
	initStringInfo(&buf);

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		appendStringInfoString(&buf, "{\"op\":\"T\",\"rel\":");
		escape_json(&buf, relname);
		appendStringInfoChar(&buf, '}');
		PaxosAddTableKeys(relname, true, &c->check, &c->write);
	}
	else
	{
		const char *op = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? "I" :
		TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "U" : "D";

		appendStringInfo(&buf, "{\"op\":\"%s\",\"rel\":", op);
		escape_json(&buf, relname);
		if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		{
			appendStringInfo(&buf, ",\"old\":%s", RowJson(rel, td->tg_trigtuple));
			PaxosAddRowKeys(rel, relname, td->tg_trigtuple, &c->check, &c->write);
		}
		if (!TRIGGER_FIRED_BY_DELETE(td->tg_event))
		{
			HeapTuple	newtuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event)
				? td->tg_newtuple : td->tg_trigtuple;

			appendStringInfo(&buf, ",\"new\":%s", RowJson(rel, newtuple));
			PaxosAddRowKeys(rel, relname, newtuple, &c->check, &c->write);
		}
		appendStringInfoChar(&buf, '}');
		/* without a primary key rows have no identity: the table is the key */
		PaxosAddTableKeys(relname, !has_pkey, &c->check, &c->write);
	}
	c->json = buf.data;
	changes = lappend(changes, c);
	MemoryContextSwitchTo(old);

	return PointerGetDatum(NULL);
}

/*
 * CommitChanges puts the transaction's entry in the log (submit.c), and
 * either records it as applied by the local commit that follows, or
 * raises a serialization failure.
 */
static void
CommitChanges(void)
{
	StringInfoData buf;
	ListCell   *lc;
	bool		first = true;
	char	   *txn_id;
	PaxosBatchResult result;
	static SPIPlanPtr mark_plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	initStringInfo(&buf);
	appendStringInfo(&buf, "\"x\":" INT64_FORMAT ",\"xid\":%u,\"incarnation\":" UINT64_FORMAT
					 ",\"origin\":", txn_x, GetTopTransactionId(), PaxosIncarnation());
	escape_json(&buf, PaxosOriginId());
	{
		List	   *checks = NIL;
		List	   *writes = NIL;

		foreach(lc, changes)
		{
			checks = list_concat(checks, ((Change *) lfirst(lc))->check);
			writes = list_concat(writes, ((Change *) lfirst(lc))->write);
		}
		PaxosAppendKeysJson(&buf, "check", checks);
		PaxosAppendKeysJson(&buf, "write", writes);
	}
	appendStringInfoString(&buf, ",\"changes\":[");
	foreach(lc, changes)
	{
		if (!first)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, ((Change *) lfirst(lc))->json);
		first = false;
	}
	appendStringInfoString(&buf, "]}");

	txn_id = psprintf("%s/%d/%016llx", PaxosOwnNodeId(), MyProcPid,
					  (unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	PaxosSubmitTransaction(txn_group, txn_id, txn_x, buf.data, &result);

	/*
	 * An entry past its lifetime fails against its own round; so does one
	 * that conflicts with an earlier entry of its own batch, in time.
	 */
	if (result.conflict == result.round && result.round > result.until)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a late commit in paxos group \"%s\"",
						txn_group),
				 errdetail("The transaction's entry reached the log in round " INT64_FORMAT ", after the last round it could commit in.",
						   result.round),
				 errhint("The transaction might succeed if retried; pg_paxos.entry_lifetime sets how many rounds an entry may take.")));
	if (result.conflict >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent update in paxos group \"%s\"",
						txn_group),
				 errdetail("The transaction's entry in round " INT64_FORMAT " conflicts with round " INT64_FORMAT ", committed after its snapshot (round " INT64_FORMAT ").",
						   result.round, result.conflict, txn_x),
				 errhint("The transaction might succeed if retried.")));

	/*
	 * The local commit that follows holds the changes: say so in it, for
	 * the applier, which will not apply the entry again (if a crash loses
	 * the commit, it loses this row with it, and the applier applies the
	 * entry from the log instead).  So the commit needs no WAL flush of
	 * its own, unless the transaction wrote something the log does not
	 * hold (local_writes.c).
	 */
	PaxosSkipLocalFlush();
	values[0] = CStringGetTextDatum(txn_group);
	values[1] = CStringGetTextDatum(result.txn_id);
	SPI_connect();
	if (SPI_execute_plan(PaxosKeptPlan(&mark_plan,
									   "INSERT INTO pgp_metadata.local_commit (group_id, txn_id)"
									   " VALUES ($1, $2)", 2, types),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record transaction %s", result.txn_id);
	SPI_finish();
}

/*
 * CaptureXactCallback: at pre-commit, certify (see the file header);
 * two-phase commit is refused for replicated writes; at the end of the
 * transaction the state is reset.
 */
static void
CaptureXactCallback(XactEvent event, void *arg)
{
	PaxosSavedUser saved;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (changes != NIL && !committing)
			{
				committing = true;
				/* pre-commit runs after the last statement's snapshot is gone */
				PushActiveSnapshot(GetTransactionSnapshot());
				PaxosBecomeSuperuser(&saved);
				PG_TRY();
				{
					CommitChanges();
				}
				PG_FINALLY();
				{
					PaxosRestoreUser(&saved);
				}
				PG_END_TRY();
				PopActiveSnapshot();
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (changes != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("PREPARE TRANSACTION is not supported for transactions that write replicated tables")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			Reset();
			break;
		default:
			break;
	}
}

/*
 * CaptureSubXactCallback drops the changes of a subtransaction that rolls
 * back: those made in it or in its children, which all have subtransaction
 * ids at least as high, since siblings started after it have not begun.
 */
static void
CaptureSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB || changes == NIL)
		return;
	foreach(lc, changes)
	{
		Change	   *c = (Change *) lfirst(lc);

		if (c->subxid >= mySubid)
			changes = foreach_delete_current(changes, lc);
	}
}
