/*
 * replicate.c
 *    Which tables are replicated, and by which group: paxos_replicate_table,
 *    the log entry that starts replicating a table on every node at the
 *    same round, and a backend cache of pgp_metadata.replicated_tables.
 *
 * A table is replicated from the round of its "replicate" entry on: when a
 * node applies that entry it records the table and installs the capture
 * triggers (capture.c), so every node captures the table's writes from the
 * same point of the log.  The cache is dropped on any relcache
 * invalidation, which installing triggers or creating the extension cause.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

PG_FUNCTION_INFO_V1(paxos_replicate_table);

typedef struct ReplicatedEntry
{
	Oid			relid;
	char		group_id[NAMEDATALEN * 2];
} ReplicatedEntry;

static HTAB *replicated = NULL;
static bool cache_valid = false;
static bool cache_loading = false;
static bool callback_registered = false;

static void InvalidateCache(Datum arg, Oid relid);
static bool OnMemberApplied(void *arg, int host, PGresult *res, const char *error);
static void ApplyOnAllMembers(const char *group_id, int64 round);
static void CheckSameColumns(PGconn *conn, const char *table, const char *display);
static void StartReplicating(const char *group_id, const char *table);
static void LoadCache(void);

/* InvalidateCache drops the cache; it is reloaded on next use. */
static void
InvalidateCache(Datum arg, Oid relid)
{
	cache_valid = false;
}

/* LoadCache reads pgp_metadata.replicated_tables (if the extension exists). */
static void
LoadCache(void)
{
	uint64		i;
	PaxosSavedUser saved;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateCache, (Datum) 0);
		callback_registered = true;
	}
	if (replicated != NULL)
		hash_destroy(replicated);
	replicated = PaxosBackendHash("pg_paxos replicated tables", sizeof(Oid),
								  sizeof(ReplicatedEntry), false);
	cache_valid = true;			/* before reading: invalidations may follow */

	/* not installed, or being installed (its script has not made the table yet) */
	if (creating_extension || !OidIsValid(get_extension_oid("pg_paxos", true)) ||
		!OidIsValid(get_relname_relid("replicated_tables",
									  get_namespace_oid("pgp_metadata", true))))
		return;
	cache_loading = true;
	/* any user's statement may need the cache */
	PaxosBecomeSuperuser(&saved);
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute("SELECT table_oid::oid, group_id FROM pgp_metadata.replicated_tables",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not read replicated tables");
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, 1, &isnull));
			ReplicatedEntry *e = hash_search(replicated, &relid, HASH_ENTER, NULL);

			strlcpy(e->group_id, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
					sizeof(e->group_id));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		PaxosRestoreUser(&saved);
		cache_loading = false;
	}
	PG_END_TRY();
}

/*
 * PaxosReplicatedGroup returns the group a table is replicated by, or NULL.
 * Needs a transaction.
 */
const char *
PaxosReplicatedGroup(Oid relid)
{
	ReplicatedEntry *e;

	if (cache_loading || !IsTransactionState())
		return NULL;
	if (!cache_valid)
		LoadCache();
	if (replicated == NULL || hash_get_num_entries(replicated) == 0)
		return NULL;
	e = hash_search(replicated, &relid, HASH_FIND, NULL);
	return e ? e->group_id : NULL;
}

/*
 * PaxosLocksGroupTables tells whether this backend holds a lock on a table
 * of the group in a mode stronger than ACCESS SHARE (a writer, or a row
 * locker): one a snapshot copy, which takes them EXCLUSIVE, waits for.
 */
bool
PaxosLocksGroupTables(const char *group_id)
{
	HASH_SEQ_STATUS seq;
	ReplicatedEntry *e;
	bool		locked = false;

	(void) PaxosReplicatedGroup(InvalidOid);	/* loads the cache if need be */
	if (replicated == NULL)
		return false;
	hash_seq_init(&seq, replicated);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		LOCKTAG		tag;
		LOCKMODE	mode;

		if (locked || strcmp(e->group_id, group_id) != 0)
			continue;
		SET_LOCKTAG_RELATION(tag, MyDatabaseId, e->relid);
		for (mode = RowShareLock; mode <= AccessExclusiveLock && !locked; mode++)
			locked = LockHeldByMe(&tag, mode);
	}
	return locked;
}

/*
 * PaxosStartReplicating makes this node replicate a table from now on:
 * record it and install the capture triggers (enabled ALWAYS, so that
 * session_replication_role, used by the applier, cannot switch capture
 * off for a user).  Run when the "replicate" entry is applied; doing it
 * twice changes nothing.
 */
void
PaxosStartReplicating(const char *group_id, const char *table)
{
	bool		save_applying = PaxosApplying;

	/* the triggers and ALTER TABLE below are not changes to capture */
	PaxosApplying = true;
	PG_TRY();
	{
		StartReplicating(group_id, table);
	}
	PG_FINALLY();
	{
		PaxosApplying = save_applying;
	}
	PG_END_TRY();
}

/* StartReplicating is PaxosStartReplicating's work. */
static void
StartReplicating(const char *group_id, const char *table)
{
	Oid			relid;
	char	   *name;
	const char *schema = PaxosExtensionSchema();
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(table)),
							 NoLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s, replicated by paxos group \"%s\", does not exist on this node",
						table, group_id),
				 errhint("Create the table on every node before replicating it.")));
	name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(group_id);
	types[0] = OIDOID;
	if (SPI_execute_with_args("INSERT INTO pgp_metadata.replicated_tables (table_oid, group_id)"
							  " VALUES ($1::oid::regclass, $2) ON CONFLICT DO NOTHING",
							  2, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record replicated table");
	if (SPI_processed == 0)
		return;					/* already replicated here */

	if (SPI_execute(psprintf("CREATE TRIGGER pg_paxos_capture"
							 " AFTER INSERT OR UPDATE OR DELETE ON %s"
							 " FOR EACH ROW EXECUTE FUNCTION %s.paxos_capture_trigger()",
							 name, schema), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("CREATE TRIGGER pg_paxos_capture_truncate"
							 " AFTER TRUNCATE ON %s"
							 " FOR EACH STATEMENT EXECUTE FUNCTION %s.paxos_capture_trigger()",
							 name, schema), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER pg_paxos_capture,"
							 " ENABLE ALWAYS TRIGGER pg_paxos_capture_truncate", name),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "pg_paxos: could not install the capture triggers on %s", name);
	cache_valid = false;
	ereport(LOG,
			(errmsg("pg_paxos: table %s is replicated by group \"%s\"", name, group_id)));
}

/* OnMemberApplied counts members that applied (never stops early). */
static bool
OnMemberApplied(void *arg, int host, PGresult *res, const char *error)
{
	if (res != NULL)
		(*(int *) arg)++;
	return false;
}

/*
 * ApplyOnAllMembers has every member of a group apply its log up to a
 * round; a member that cannot is named in a warning.
 */
static void
ApplyOnAllMembers(const char *group_id, int64 round)
{
	MemoryContext outer = CurrentMemoryContext;
	List	   *hosts;
	PeerConnection **peers;
	int			npeers;
	int			applied = 0;
	char		round_str[32];
	const char *params[3];
	FanoutStats stats;

	SPI_connect();
	hosts = PaxosStringListCopy(GroupHostsForRound(group_id, round + 1), outer);
	SPI_finish();
	peers = PaxosPeersFor(hosts, &npeers);
	snprintf(round_str, sizeof(round_str), INT64_FORMAT, round);
	params[0] = group_id;
	params[1] = round_str;
	params[2] = "false";
	FanoutCall(peers, npeers, RPC_APPLY, params, 3, PaxosTimeoutMs, OnMemberApplied,
			   &applied, &stats);
	if (applied < npeers)
		ereport(WARNING,
				(errmsg("%d of %d members of paxos group \"%s\" have not applied round " INT64_FORMAT " yet",
						npeers - applied, npeers, group_id, round),
				 errdetail("%s", stats.first_error ? stats.first_error : "no answer"),
				 errhint("They start replicating the table when they apply it; do not write the table on them before.")));
}

/*
 * paxos_replicate_table starts replicating a table through a group's log.
 * Run it on one node, after creating the table on every node: the entry it
 * appends makes every node replicate the table from the same round.  It
 * returns once every reachable member applied that entry (so writes on any
 * node are captured from then on); an unreachable member installs its
 * triggers when it applies the entry.
 */
Datum
paxos_replicate_table(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	Oid			relid;
	char	   *name;
	char	   *value_id;
	const char *existing;
	GroupInfo	group;
	int64		round;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("new_table_oid must not be NULL")));
	relid = PG_GETARG_OID(1);
	if (get_rel_relkind(relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("only ordinary tables can be replicated")));
	if (get_rel_persistence(relid) != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("temporary and unlogged tables cannot be replicated")));
	existing = PaxosReplicatedGroup(relid);
	if (existing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table %s is already replicated by paxos group \"%s\"",
						get_rel_name(relid), existing)));

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	SPI_finish();

	name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
	value_id = psprintf(PAXOS_REPLICATE_PREFIX "%016llx",
						(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	round = PaxosAppendValue(group_id, value_id, name);
	ApplyOnAllMembers(group_id, round);
	cache_valid = false;

	PG_RETURN_VOID();
}

/*
 * PaxosForgetDroppedTables stops replicating tables that no longer exist
 * (after a replicated DROP TABLE).
 */
void
PaxosForgetDroppedTables(void)
{
	SPI_connect();
	if (SPI_execute("DELETE FROM pgp_metadata.replicated_tables r WHERE NOT EXISTS"
					" (SELECT 1 FROM pg_class c WHERE c.oid = r.table_oid::oid)",
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pg_paxos: could not forget dropped tables");
	SPI_finish();
	cache_valid = false;
}

/*
 * PaxosCopyMetadataRows copies the rows of one pgp_metadata table for a
 * group from a peer's snapshot, as one JSON array.
 */
void
PaxosCopyMetadataRows(PGconn *conn, const char *group_id, const char *display,
				 const char *table)
{
	PGresult   *res;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	res = PaxosRemoteQuery(conn, psprintf("SELECT coalesce(json_agg(t), '[]')::text"
										  " FROM pgp_metadata.%s t WHERE group_id = $1", table),
						   group_id, display);
	values[0] = CStringGetTextDatum(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (SPI_execute_with_args(psprintf("INSERT INTO pgp_metadata.%s SELECT * FROM"
									   " json_populate_recordset(NULL::pgp_metadata.%s, $1::json)",
									   table, table),
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not copy pgp_metadata.%s", table);
}

/*
 * CheckSameColumns refuses to copy a table's rows from a peer whose table
 * has other columns (names and types): rows are copied by column name, and
 * a column missing here would lose its values without a word.
 */
static void
CheckSameColumns(PGconn *conn, const char *table, const char *display)
{
	const char *sql = "SELECT coalesce(string_agg(attname || ' ' || format_type(atttypid, atttypmod),"
		" ', ' ORDER BY attname), '') FROM pg_attribute"
		" WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped";
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(table)};
	PGresult   *res;
	char	   *here;

	/* not read-only: a new command sees the DDL this transaction replayed */
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "pg_paxos: could not read the columns of %s", table);
	here = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	res = PaxosRemoteQuery(conn, sql, table, display);
	if (strcmp(here, PQgetvalue(res, 0, 0)) != 0)
	{
		char	   *there = pstrdup(PQgetvalue(res, 0, 0));

		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has other columns here than on node \"%s\"", table, display),
				 errdetail("Here: %s. There: %s.", here, there),
				 errhint("Give the table the same columns on this node, then try again.")));
	}
	PQclear(res);
}

/*
 * PaxosCopyReplicatedTables is the part of joining a group that concerns
 * replication: from the existing member's snapshot (conn is in a
 * repeatable-read transaction there), start replicating its tables here,
 * copy their contents, and copy the certification state, so that this node
 * certifies every later round as the others do and applies exactly the
 * rounds the existing member had not applied in that snapshot.  With
 * `replace` (a member copying a snapshot, snapshot.c) tables are emptied
 * with DELETE, not TRUNCATE: statements that only opened them go on, and
 * see the copy when it commits.  Caller is connected to SPI.
 */
void
PaxosCopyReplicatedTables(PGconn *conn, const char *group_id, const char *display,
						  bool replace)
{
	PGresult   *res;
	int			i;
	bool		save_applying = PaxosApplying;

	PaxosCopyMetadataRows(conn, group_id, display, "outcome");
	PaxosCopyMetadataRows(conn, group_id, display, "cert_key");
	PaxosCopyMetadataRows(conn, group_id, display, "cancelled_txn");
	PaxosCopyMetadataRows(conn, group_id, display, "ddl_history");
	/* transactions the copied tables hold but the peer has not passed yet */
	PaxosCopyMetadataRows(conn, group_id, display, "local_commit");
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(group_id)};

		if (SPI_execute_with_args("UPDATE pgp_metadata.local_commit SET copied = true"
								  " WHERE group_id = $1", 1, types, values, NULL, false, 0)
			!= SPI_OK_UPDATE)
			elog(ERROR, "pg_paxos: could not mark the copied transactions");
	}

	res = PaxosRemoteQuery(conn, "SELECT table_oid::text FROM pgp_metadata.replicated_tables"
						   " WHERE group_id = $1", group_id, display);
	PaxosApplying = true;
	PG_TRY();
	{
		for (i = 0; i < PQntuples(res); i++)
		{
			char	   *table = pstrdup(PQgetvalue(res, i, 0));
			PGresult   *rows;

			StartReplicating(group_id, table);
			CheckSameColumns(conn, table, display);
			if (SPI_execute(psprintf(replace ? "DELETE FROM %s" : "TRUNCATE %s", table),
							false, 0) != (replace ? SPI_OK_DELETE : SPI_OK_UTILITY))
				elog(ERROR, "pg_paxos: could not empty %s", table);
			rows = PaxosRemoteQuery(conn, psprintf("SELECT coalesce(json_agg(t), '[]')::text FROM %s t",
												   table), NULL, display);
			PaxosInsertRows(table, PQgetvalue(rows, 0, 0));
			PQclear(rows);
		}
	}
	PG_FINALLY();
	{
		PaxosApplying = save_applying;
		PQclear(res);
	}
	PG_END_TRY();
	cache_valid = false;
}
