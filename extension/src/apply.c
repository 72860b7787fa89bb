/*
 * apply.c
 *    Applying the log: every node executes the entries of a group in log
 *    order (committed transactions' row changes, DDL, plain SQL values,
 *    tables that start being replicated), in the background and before a
 *    strong read.
 *
 * A round is applied at most once on a node: a transaction's origin marks
 * its round applied in the local transaction that holds its changes
 * (capture.c), and the applier claims a round with the same row before it
 * applies it, so the two never both apply one round.  group's
 * last_applied_round is the applier's cursor: every round up to it is
 * applied (rounds above may be, by their origin).  Applying and advancing
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

/* Advisory lock class serialising appliers of one group on one node. */
#define APPLY_LOCK_CLASS 29030

int			PaxosConsistencyModel = PAXOS_CONSISTENCY_STRONG;

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static bool strong_read_active = false;

/* Start time of the statement last caught up for (strong reads). */
static TimestampTz synced_statement = 0;

typedef struct ApplyCollector
{
	bool		answered;
	int64		applied;
} ApplyCollector;

typedef struct ReadGroups
{
	List	   *groups;			/* char * of the groups a query reads */
} ReadGroups;

static void ApplyChanges(const char *group_id, int64 round, const char *entry);
static void ApplyChangesAsReplica(const char *group_id, int64 round, const char *entry);
static void WaitForLocalOrigin(const char *entry);
static bool LockApplier(const char *group_id, bool wait_briefly);
static void RememberExclusiveTables(const char *entry);
static void ClaimAndApply(const char *group_id, int64 round, const char *entry);
static bool TryApplyExclusive(const char *group_id, int64 round, const char *entry);
static void ApplyRowChange(int64 round, const char *op, const char *rel,
						   const char *old_row, const char *new_row);
static void ApplyInserts(int64 round, const char *rel, StringInfo rows);
static char *ColumnList(Oid relid, bool key_only, bool for_update, const char *prefix);
static Oid	RelationFromName(const char *rel);
static bool OnApplied(void *arg, int host, PGresult *res, const char *error);
static bool FindReplicatedTables(Node *node, ReadGroups *rg);
static void StrongReadHook(ParseState *pstate, Query *query, JumbleState *jstate);
static void StrongExecutorStart(QueryDesc *queryDesc, int eflags);
static void SyncGroups(List *groups, bool may_apply_here);

/* RelationFromName resolves a qualified table name from the log. */
static Oid
RelationFromName(const char *rel)
{
	return RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(rel)),
							RowExclusiveLock, false);
}

/*
 * ColumnList lists the columns of a table that are written on apply (not
 * dropped, not generated; for_update: not GENERATED ALWAYS identity), or
 * its primary key columns (key_only), each prefixed ("o." for "o.a, o.b").
 * Empty for key_only without a key.
 */
static char *
ColumnList(Oid relid, bool key_only, bool for_update, const char *prefix)
{
	Relation	rel = RelationIdGetRelation(relid);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData buf;
	Bitmapset  *pkey = NULL;
	int			i;

	if (key_only)
	{
		Oid			pkoid = RelationGetPrimaryKeyIndex(rel);

		if (OidIsValid(pkoid))
		{
			HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkoid));
			Form_pg_index index = (Form_pg_index) GETSTRUCT(itup);

			for (i = 0; i < index->indnkeyatts; i++)
				pkey = bms_add_member(pkey, index->indkey.values[i]);
			ReleaseSysCache(itup);
		}
	}
	initStringInfo(&buf);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		/* an identity column GENERATED ALWAYS cannot be updated: it never changes */
		if (for_update && att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;
		if (key_only && !bms_is_member(att->attnum, pkey))
			continue;
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix,
						 quote_identifier(NameStr(att->attname)));
	}
	RelationClose(rel);
	return buf.data;
}

/*
 * ApplyInserts inserts a batch of rows (a JSON array of row images) into
 * one table with one statement.
 */
static void
ApplyInserts(int64 round, const char *rel, StringInfo rows)
{
	appendStringInfoChar(rows, ']');
	PaxosInsertRows(rel, rows->data);
	resetStringInfo(rows);
}

/*
 * OwnedSequences lists "column sequence" pairs of the serial and identity
 * columns of a table, as SQL fragments; cached per table until a relcache
 * invalidation.
 */
typedef struct SequenceCacheEntry
{
	Oid			relid;
	List	   *pairs;			/* char *[2] in TopMemoryContext */
} SequenceCacheEntry;

static HTAB *sequence_cache = NULL;

static void
InvalidateSequenceCache(Datum arg, Oid relid)
{
	if (sequence_cache != NULL)
	{
		hash_destroy(sequence_cache);
		sequence_cache = NULL;
	}
}

static List *
OwnedSequences(Oid relid)
{
	static bool registered = false;
	SequenceCacheEntry *e;
	bool		found;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	uint64		i;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(InvalidateSequenceCache, (Datum) 0);
		registered = true;
	}
	if (sequence_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SequenceCacheEntry);
		ctl.hcxt = TopMemoryContext;
		sequence_cache = hash_create("pg_paxos sequences", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(sequence_cache, &relid, HASH_ENTER, &found);
	if (found)
		return e->pairs;
	e->pairs = NIL;
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT quote_ident(a.attname), d.objid::regclass::text"
							  " FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
							  " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
							  " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
							  " AND d.refobjid = $1 AND d.deptype IN ('a', 'i')",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not find the sequences of a table");
	for (i = 0; i < SPI_processed; i++)
	{
		char	  **pair = MemoryContextAlloc(TopMemoryContext, sizeof(char *) * 2);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pair[0] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		pair[1] = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		e->pairs = lappend(e->pairs, pair);
		MemoryContextSwitchTo(old);
	}
	return e->pairs;
}

/*
 * AdvanceSequences moves the sequences of a table's serial and identity
 * columns past the values applied rows carry, so that this node's own next
 * values do not collide with rows made elsewhere (a concurrent collision
 * is a key conflict, and certification aborts one side).
 */
static void
AdvanceSequences(Oid relid, const char *json_rows)
{
	ListCell   *lc;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(json_rows);
	foreach(lc, OwnedSequences(relid))
	{
		char	  **pair = (char **) lfirst(lc);

		if (SPI_execute_with_args(psprintf("SELECT setval('%s', m.v) FROM"
										   " (SELECT max((r->>'%s')::bigint) v FROM jsonb_array_elements($1::jsonb) r) m,"
										   " %s s WHERE m.v IS NOT NULL AND (m.v > s.last_value OR NOT s.is_called)",
										   pair[1], pair[0][0] == '"' ? pnstrdup(pair[0] + 1, strlen(pair[0]) - 2) : pair[0],
										   pair[1]),
								  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not advance sequence %s", pair[1]);
	}
}

/*
 * PaxosInsertRows inserts rows given as a JSON array of row images into a
 * table, with one statement, keeping the values of identity columns.
 * Caller is connected to SPI.
 */
void
PaxosInsertRows(const char *rel, const char *json_rows)
{
	Oid			relid = RelationFromName(rel);
	char	   *cols = ColumnList(relid, false, false, "");
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(json_rows);
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE"
									   " SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1::jsonb)",
									   rel, cols, cols, rel),
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not insert rows into %s", rel);
	AdvanceSequences(relid, json_rows);
}

/*
 * ApplyRowChange applies one UPDATE or DELETE.  A table with a primary key
 * finds the row by it; one without by the whole old row (one of identical
 * rows).  Exactly one row must be found.
 */
static void
ApplyRowChange(int64 round, const char *op, const char *rel,
			   const char *old_row, const char *new_row)
{
	Oid			relid = RelationFromName(rel);
	char	   *keycols = ColumnList(relid, true, false, "");
	char	   *target;
	char	   *sql;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	if (keycols[0] != '\0')
		target = psprintf("(%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $1::jsonb))",
						  ColumnList(relid, true, false, "t."), keycols, rel);
	else
		target = psprintf("t.ctid = (SELECT r.ctid FROM %s r WHERE r IS NOT DISTINCT FROM"
						  " jsonb_populate_record(NULL::%s, $1::jsonb) LIMIT 1)", rel, rel);

	values[0] = CStringGetTextDatum(old_row);
	if (op[0] == 'U')
	{
		char	   *cols = ColumnList(relid, false, true, "");

		values[1] = CStringGetTextDatum(new_row);
		sql = psprintf("UPDATE %s t SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $2::jsonb))"
					   " WHERE %s", rel, cols, cols, rel, target);
		/* a one-column list needs ROW() around the subquery's side */
		if (strchr(cols, ',') == NULL)
			sql = psprintf("UPDATE %s t SET %s = (SELECT %s FROM jsonb_populate_record(NULL::%s, $2::jsonb))"
						   " WHERE %s", rel, cols, cols, rel, target);
		rc = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	}
	else
	{
		sql = psprintf("DELETE FROM %s t WHERE %s", rel, target);
		rc = SPI_execute_with_args(sql, 1, types, values, NULL, false, 0);
	}
	if (rc < 0)
		elog(ERROR, "pg_paxos: could not apply round " INT64_FORMAT ": %s",
			 round, SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pg_paxos: cannot apply round " INT64_FORMAT ": the row to %s in %s is not there",
						round, op[0] == 'U' ? "update" : "delete", rel),
				 errdetail("Old row: %s", old_row),
				 errhint("This node's copy of the table differs from the others; applying stops here.")));
	if (op[0] == 'U')
		AdvanceSequences(relid, psprintf("[%s]", new_row));
}

/*
 * ApplyChanges applies a committed transaction entry: its changes in
 * order, consecutive inserts into one table as one statement.
 */
static void
ApplyChanges(const char *group_id, int64 round, const char *entry)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	SPITupleTable *tuptable;
	uint64		n;
	uint64		i;
	StringInfoData rows;
	char	   *insert_rel = NULL;

	values[0] = CStringGetTextDatum(entry);
	if (SPI_execute_with_args("SELECT c->>'op', c->>'rel', (c->'old')::text, (c->'new')::text, c->>'sql'"
							  " FROM jsonb_array_elements($1::jsonb->'changes') c",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the changes of round " INT64_FORMAT, round);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	initStringInfo(&rows);

	for (i = 0; i < n; i++)
	{
		HeapTuple	t = tuptable->vals[i];
		TupleDesc	d = tuptable->tupdesc;
		char	   *op = SPI_getvalue(t, d, 1);
		char	   *rel = SPI_getvalue(t, d, 2);

		if (insert_rel != NULL && (op[0] != 'I' || strcmp(rel, insert_rel) != 0))
		{
			ApplyInserts(round, insert_rel, &rows);
			insert_rel = NULL;
		}
		switch (op[0])
		{
			case 'I':
				if (insert_rel == NULL)
				{
					insert_rel = rel;
					appendStringInfoChar(&rows, '[');
				}
				else
					appendStringInfoChar(&rows, ',');
				appendStringInfoString(&rows, SPI_getvalue(t, d, 4));
				break;
			case 'U':
			case 'D':
				ApplyRowChange(round, op, rel, SPI_getvalue(t, d, 3), SPI_getvalue(t, d, 4));
				break;
			case 'T':
				if (SPI_execute(psprintf("TRUNCATE %s", rel), false, 0) != SPI_OK_UTILITY)
					elog(ERROR, "pg_paxos: could not truncate %s", rel);
				break;
			case 'S':
				if (SPI_execute(SPI_getvalue(t, d, 5), false, 0) < 0)
					elog(ERROR, "pg_paxos: could not apply DDL of round " INT64_FORMAT, round);
				PaxosForgetDroppedTables();
				break;
			default:
				elog(ERROR, "pg_paxos: unknown change \"%s\" in round " INT64_FORMAT, op, round);
		}
	}
	if (insert_rel != NULL)
		ApplyInserts(round, insert_rel, &rows);
}

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
 * again and again.  Caller is connected to SPI.
 */
static bool
LockApplier(const char *group_id, bool wait_briefly)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int			attempt;

	values[0] = CStringGetTextDatum(group_id);
	if (!wait_briefly)
	{
		if (SPI_execute_with_args("SELECT pg_advisory_xact_lock(" CppAsString2(APPLY_LOCK_CLASS)
								  ", hashtext($1))", 1, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not lock the log of group \"%s\"", group_id);
		return true;
	}
	for (attempt = 0; attempt < 50; attempt++)
	{
		bool		isnull;

		if (SPI_execute_with_args("SELECT pg_try_advisory_xact_lock(" CppAsString2(APPLY_LOCK_CLASS)
								  ", hashtext($1))", 1, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not lock the log of group \"%s\"", group_id);
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
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
	if (group.last_applied_round >= max_round)
		return group.last_applied_round;

	(void) PaxosCertifyThroughSelf(group_id, max_round);

	SPI_connect();
	{
		values[0] = CStringGetTextDatum(group_id);
		for (round = group.last_applied_round + 1; round <= max_round; round++)
		{
			px_acceptor_state st;

			CHECK_FOR_INTERRUPTS();
			if (!RoundStoreLoad(group_id, round, false, &st) || !st.decided)
				elog(ERROR, "pg_paxos: round " INT64_FORMAT " of group \"%s\" is not learned",
					 round, group_id);
			if (st.value.data == NULL || MembershipIsChange(st.value) ||
				strncmp(st.value.id, PAXOS_INTERNAL_PREFIX "noop:",
						strlen(PAXOS_INTERNAL_PREFIX "noop:")) == 0)
				continue;
			if (strncmp(st.value.id, PAXOS_REPLICATE_PREFIX, strlen(PAXOS_REPLICATE_PREFIX)) == 0)
			{
				PaxosStartReplicating(group_id, st.value.data);
				continue;
			}
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
			ClaimAndApply(group_id, round, st.value.data);
		}
		values[0] = CStringGetTextDatum(group_id);
		values[1] = Int64GetDatum(max_round);
		if (SPI_execute_with_args("UPDATE pgp_metadata.\"group\" SET last_applied_round = $2"
								  " WHERE group_id = $1 AND last_applied_round < $2",
								  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_paxos: could not record the applied round");
	}
	SPI_finish();
	return max_round;
}

/*
 * WaitForLocalOrigin waits, for an entry this node originated, until the
 * originating transaction has ended: between its certification and its
 * local commit the round is about to be applied by that transaction, and
 * the applier must neither apply it too nor deadlock with it.
 */
static void
WaitForLocalOrigin(const char *entry)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	char	   *origin;
	TransactionId xid;

	values[0] = CStringGetTextDatum(entry);
	if (SPI_execute_with_args("SELECT $1::jsonb->>'origin', ($1::jsonb->>'xid')::xid",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the origin of an entry");
	origin = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (origin == NULL || isnull || strcmp(origin, PaxosOriginId()) != 0 ||
		!TransactionIdIsValid(xid))
		return;
	if (TransactionIdIsInProgress(xid))
		XactLockTableWait(xid, NULL, NULL, XLTW_None);
}

/*
 * ClaimAndApply applies a committed transaction round unless its origin
 * did (claiming it with the outcome row, see the file header).
 */
static void
ClaimAndApply(const char *group_id, int64 round, const char *entry)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];

	WaitForLocalOrigin(entry);
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	if (SPI_execute_with_args("UPDATE pgp_metadata.outcome SET applied = true"
							  " WHERE group_id = $1 AND round_num = $2 AND committed AND NOT applied",
							  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pg_paxos: could not claim round " INT64_FORMAT, round);
	if (SPI_processed == 1)
		ApplyChangesAsReplica(group_id, round, entry);
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
	if (SPI_execute_with_args("SELECT DISTINCT c->>'rel' FROM jsonb_array_elements($1::jsonb->'changes') c"
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
TryApplyExclusive(const char *group_id, int64 round, const char *entry)
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
		ClaimAndApply(group_id, round, entry);
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
		RememberExclusiveTables(entry);
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
		ApplyChanges(group_id, round, entry);
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
 * transaction (rare), when may_apply_here; the rest by our own acceptor,
 * in its transaction.  A statement that has its target table open (an
 * INSERT, UPDATE or DELETE being analysed) cannot: it goes on from the
 * state before that round, and certification aborts it if that matters.
 */
void
PaxosSyncGroup(const char *group_id, bool may_apply_here)
{
	PaxosSavedUser saved;

	PaxosBecomeSuperuser(&saved);
	PG_TRY();
	{
		int64		target = PaxosMaxGroupRound(group_id, true);

		if (PaxosApplyThroughSelf(group_id, target, true) < target && may_apply_here)
			(void) PaxosApplyUpTo(group_id, target, APPLY_ALL);
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

	SyncGroups(rg.groups, query->commandType == CMD_SELECT);
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
}

/*
 * StrongExecutorStart covers what parse analysis does not see: a prepared
 * statement executed again (extended protocol, EXECUTE).  A read of
 * replicated tables that was not caught up for this statement is caught
 * up now; under READ COMMITTED it then gets a new snapshot, taken after
 * (under REPEATABLE READ the transaction's first snapshot is the read).
 */
static void
StrongExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (PaxosConsistencyModel == PAXOS_CONSISTENCY_STRONG && !PaxosApplying &&
		!strong_read_active && IsTransactionState() && !IsParallelWorker() &&
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		queryDesc->operation == CMD_SELECT &&
		synced_statement != GetCurrentStatementStartTimestamp() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()))
	{
		List	   *groups = NIL;
		ListCell   *lc;

		foreach(lc, queryDesc->plannedstmt->rtable)
		{
			RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
			const char *group_id;

			if (rte->rtekind == RTE_RELATION &&
				(group_id = PaxosReplicatedGroup(rte->relid)) != NULL)
				groups = list_append_unique(groups, makeString(pstrdup(group_id)));
		}
		if (groups != NIL)
		{
			SyncGroups(groups, true);
			if (!IsolationUsesXactSnapshot() && queryDesc->snapshot != NULL)
			{
				Snapshot	fresh = RegisterSnapshot(GetTransactionSnapshot());

				UnregisterSnapshot(queryDesc->snapshot);
				queryDesc->snapshot = fresh;
			}
		}
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
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
		int			rc = SPI_execute(sql, false, 0);

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

/* PaxosInitApply installs the strong-read hook (from _PG_init). */
void
PaxosInitApply(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = StrongReadHook;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = StrongExecutorStart;
}
