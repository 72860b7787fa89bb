/*
 * apply_rows.c
 *    Applying one committed transaction entry: its row changes, TRUNCATE
 *    and DDL, in order, with statements built from the local catalog
 *    (columns, primary key, sequences), prepared once per table, and the
 *    row images the log carries as their parameters.
 *
 * Consecutive inserts into one table are one statement.  An UPDATE or
 * DELETE finds its row by primary key (without SQL: apply_direct.c), or,
 * in a table without one, by the whole old row (one of identical rows);
 * exactly one row must be found, or applying stops.  Serial and identity
 * sequences are moved past the values applied.  Caller is connected to SPI.
 */
#include "pg_paxos.h"

#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

static Oid	RelationFromName(const char *rel);
static char *ColumnList(Oid relid, bool key_only, bool for_update, const char *prefix);
static void ApplyInserts(int64 round, const char *rel, List *rows);
static void ApplyRowChange(int64 round, char op, const char *rel, Oid relid,
						   PaxosDirectTable *direct,
						   Jsonb *old_row, Jsonb *new_row);
static SPIPlanPtr ApplyPlan(Oid relid, char op, const char *rel);

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
 * ApplyInserts inserts a run of row images into one table with one
 * statement (for a large run, cheaper than a row at a time through the
 * executor: the rows are read as one JSON array).
 */
static void
ApplyInserts(int64 round, const char *rel, List *rows)
{
	StringInfoData all;
	ListCell   *lc;

	initStringInfo(&all);
	appendStringInfoChar(&all, '[');
	foreach(lc, rows)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(&all, ',');
		appendStringInfoString(&all, (const char *) lfirst(lc));
	}
	appendStringInfoChar(&all, ']');
	PaxosInsertRows(rel, all.data);
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

/*
 * The statements that apply changes to a table, prepared once per table
 * and kind of change: an entry's row images are parameters.  A relcache
 * invalidation of the table (ALTER TABLE) makes them stale, since their
 * column lists come from its catalog.
 */
typedef struct ApplyPlanKey
{
	Oid			relid;
	char		op;				/* 'I', 'U' or 'D' */
} ApplyPlanKey;

typedef struct ApplyPlanEntry
{
	ApplyPlanKey key;
	SPIPlanPtr	plan;
	bool		stale;
} ApplyPlanEntry;

static HTAB *apply_plans = NULL;

static void
InvalidateTableCaches(Datum arg, Oid relid)
{
	if (sequence_cache != NULL)
	{
		hash_destroy(sequence_cache);
		sequence_cache = NULL;
	}
	if (apply_plans != NULL)
	{
		HASH_SEQ_STATUS status;
		ApplyPlanEntry *e;

		/* freed at their next use: one may be running now */
		hash_seq_init(&status, apply_plans);
		while ((e = hash_seq_search(&status)) != NULL)
			if (!OidIsValid(relid) || e->key.relid == relid)
				e->stale = true;
	}
}

/* RegisterTableCaches hooks the invalidation of both caches, once. */
static void
RegisterTableCaches(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(InvalidateTableCaches, (Datum) 0);
		registered = true;
	}
}

static List *
OwnedSequences(Oid relid)
{
	SequenceCacheEntry *e;
	bool		found;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	uint64		i;

	RegisterTableCaches();
	if (sequence_cache == NULL)
		sequence_cache = PaxosBackendHash("pg_paxos sequences", sizeof(Oid),
										  sizeof(SequenceCacheEntry), false);
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
	Datum		values[1];

	values[0] = CStringGetTextDatum(json_rows);
	if (SPI_execute_plan(ApplyPlan(relid, 'I', rel), values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not insert rows into %s", rel);
	AdvanceSequences(relid, json_rows);
}

/*
 * ApplySql is the statement that applies one kind of change to a table:
 * rows inserted from a JSON array of row images ($1); a row updated ($2:
 * its new image) or deleted, found by its primary key, or, in a table
 * without one, by the whole old row ($1; one of identical rows).
 */
static char *
ApplySql(Oid relid, char op, const char *rel)
{
	char	   *keycols = ColumnList(relid, true, false, "");
	char	   *target;
	char	   *cols;

	if (op == 'I')
	{
		cols = ColumnList(relid, false, false, "");
		return psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE"
						" SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1::jsonb)",
						rel, cols, cols, rel);
	}
	if (keycols[0] != '\0')
		target = psprintf("(%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $1::jsonb))",
						  ColumnList(relid, true, false, "t."), keycols, rel);
	else
		target = psprintf("t.ctid = (SELECT r.ctid FROM %s r WHERE r IS NOT DISTINCT FROM"
						  " jsonb_populate_record(NULL::%s, $1::jsonb) LIMIT 1)", rel, rel);
	if (op == 'D')
		return psprintf("DELETE FROM %s t WHERE %s", rel, target);

	cols = ColumnList(relid, false, true, "");
	/* a one-column list needs no parentheses (they would make it ROW()) */
	if (strchr(cols, ',') == NULL)
		return psprintf("UPDATE %s t SET %s = (SELECT %s FROM jsonb_populate_record(NULL::%s, $2::jsonb))"
						" WHERE %s", rel, cols, cols, rel, target);
	return psprintf("UPDATE %s t SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $2::jsonb))"
					" WHERE %s", rel, cols, cols, rel, target);
}

/* ApplyPlan returns the kept statement for a kind of change to a table. */
static SPIPlanPtr
ApplyPlan(Oid relid, char op, const char *rel)
{
	ApplyPlanKey key;
	ApplyPlanEntry *e;
	Oid			types[2] = {TEXTOID, TEXTOID};
	char	   *sql;
	SPIPlanPtr	plan;

	RegisterTableCaches();
	if (apply_plans == NULL)
		apply_plans = PaxosBackendHash("pg_paxos apply plans", sizeof(ApplyPlanKey),
									   sizeof(ApplyPlanEntry), false);
	memset(&key, 0, sizeof(key));
	key.relid = relid;
	key.op = op;
	e = hash_search(apply_plans, &key, HASH_FIND, NULL);
	if (e != NULL && !e->stale)
		return e->plan;
	if (e != NULL)
	{
		SPI_freeplan(e->plan);
		(void) hash_search(apply_plans, &key, HASH_REMOVE, NULL);
	}

	sql = ApplySql(relid, op, rel);
	plan = SPI_prepare_cursor(sql, op == 'U' ? 2 : 1, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "pg_paxos: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "pg_paxos: could not keep a plan");
	e = hash_search(apply_plans, &key, HASH_ENTER, NULL);
	e->plan = plan;
	e->stale = false;
	return plan;
}

/*
 * ApplyRowChange applies one UPDATE or DELETE, through the executor
 * (direct, for a table with a primary key) or with an SQL statement.
 * Exactly one row must be found.
 */
static void
ApplyRowChange(int64 round, char op, const char *rel, Oid relid,
			   PaxosDirectTable *direct, Jsonb *old_row, Jsonb *new_row)
{
	Datum		values[2];
	int			rc;
	uint64		processed;

	if (old_row == NULL || (op == 'U' && new_row == NULL))
		elog(ERROR, "pg_paxos: a change of round " INT64_FORMAT " lacks its row image", round);
	if (direct != NULL)
		processed = PaxosDirectApply(direct, op, old_row, new_row) ? 1 : 0;
	else
	{
		values[0] = CStringGetTextDatum(PaxosImageText(old_row));
		values[1] = op == 'U' ? CStringGetTextDatum(PaxosImageText(new_row)) : (Datum) 0;
		rc = SPI_execute_plan(ApplyPlan(relid, op, rel), values, NULL, false, 0);
		if (rc < 0)
			elog(ERROR, "pg_paxos: could not apply round " INT64_FORMAT ": %s",
				 round, SPI_result_code_string(rc));
		processed = SPI_processed;
	}
	if (processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pg_paxos: cannot apply round " INT64_FORMAT ": the row to %s in %s is not there",
						round, op == 'U' ? "update" : "delete", rel),
				 errdetail("Old row: %s", PaxosImageText(old_row)),
				 errhint("This node's copy of the table differs from the others; applying stops here.")));
	if (op == 'U' && OwnedSequences(relid) != NIL)
		AdvanceSequences(relid, psprintf("[%s]", PaxosImageText(new_row)));
}

/*
 * PaxosApplyChanges applies a committed transaction entry: its changes in
 * order: consecutive inserts into one table as one statement, updates and
 * deletes of a table with a primary key through the executor
 * (apply_direct.c).
 */
void
PaxosApplyChanges(const char *group_id, int64 round, const char *entry)
{
	ListCell   *lc;
	List	   *rows = NIL;		/* the run of inserts into insert_rel */
	char	   *insert_rel = NULL;
	char	   *direct_rel = NULL;	/* the table updates go to now */
	Oid			direct_relid = InvalidOid;
	PaxosDirectTable *direct = NULL;

	foreach(lc, PaxosEntryChanges(entry))
	{
		PaxosChange *c = (PaxosChange *) lfirst(lc);
		bool		row_change = c->op == 'U' || c->op == 'D';

		if (insert_rel != NULL && (c->op != 'I' || strcmp(c->rel, insert_rel) != 0))
		{
			ApplyInserts(round, insert_rel, rows);
			insert_rel = NULL;
			rows = NIL;
		}
		/* a run of updates and deletes of one table shares its executor state */
		if (direct_rel != NULL && (!row_change || strcmp(c->rel, direct_rel) != 0))
		{
			if (direct != NULL)
				PaxosDirectEnd(direct);
			direct = NULL;
			direct_rel = NULL;
		}
		if (row_change && direct_rel == NULL)
		{
			direct_rel = c->rel;
			direct_relid = RelationFromName(c->rel);
			direct = PaxosDirectStart(direct_relid);
		}
		switch (c->op)
		{
			case 'I':
				if (c->new_row == NULL)
					elog(ERROR, "pg_paxos: a change of round " INT64_FORMAT " lacks its row image", round);
				insert_rel = c->rel;
				rows = lappend(rows, PaxosImageText(c->new_row));
				break;
			case 'U':
			case 'D':
				ApplyRowChange(round, c->op, c->rel, direct_relid, direct,
							   c->old_row, c->new_row);
				break;
			case 'T':
				if (SPI_execute(psprintf("TRUNCATE %s", c->rel), false, 0) != SPI_OK_UTILITY)
					elog(ERROR, "pg_paxos: could not truncate %s", c->rel);
				break;
			case 'S':
				if (c->sql == NULL || SPI_execute(c->sql, false, 0) < 0)
					elog(ERROR, "pg_paxos: could not apply DDL of round " INT64_FORMAT, round);
				PaxosForgetDroppedTables();
				break;
			default:
				elog(ERROR, "pg_paxos: unknown change \"%c\" in round " INT64_FORMAT, c->op, round);
		}
	}
	if (insert_rel != NULL)
		ApplyInserts(round, insert_rel, rows);
	if (direct != NULL)
		PaxosDirectEnd(direct);
}
