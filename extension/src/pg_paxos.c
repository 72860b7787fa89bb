/*
 * pg_paxos.c
 *    Module load: GUCs, and the argument checks every SQL-callable function
 *    shares, so that bad input always gets the same clear error.
 */
#include "pg_paxos.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static const struct config_enum_entry consistency_options[] = {
	{"strong", PAXOS_CONSISTENCY_STRONG, false},
	{"optimistic", PAXOS_CONSISTENCY_OPTIMISTIC, false},
	{NULL, 0, false}
};

char	   *PaxosNodeId = NULL;
int			PaxosRpcTimeoutMs = 2000;
int			PaxosTimeoutMs = 30000;

static shmem_request_hook_type prev_shmem_request_hook = NULL;

/*
 * RegisterWorker registers one of pg_paxos's background workers, started
 * once recovery is over and restarted a second after it exits.
 */
static void
RegisterWorker(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_paxos");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", name);
	RegisterBackgroundWorker(&worker);
}

/*
 * PaxosWorkerConnect starts a background worker's life: signals (SIGHUP
 * reloads the configuration, SIGTERM ends it), a connection to
 * pg_paxos.database, and no JIT: its queries are short, and compiling one
 * whose estimate grew with the log cost a quarter of a second.
 */
void
PaxosWorkerConnect(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(PaxosDatabase, NULL, 0);
	pgstat_report_appname(name);
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
}
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* PaxosShmemRequest asks for the leaders' views, the commit queue, the
 * apply progress and the server's incarnation. */
static void
PaxosShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(add_size(add_size(PaxosLeaderShmemSize(), PaxosBatchShmemSize()),
											 PaxosProgressShmemSize()),
									PaxosIncarnationShmemSize()));
	RequestNamedLWLockTranche("pg_paxos", 2);
}

/* PaxosShmemStartup creates or attaches to them. */
static void
PaxosShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	PaxosLeaderShmemInit();
	PaxosBatchShmemInit();
	PaxosProgressShmemInit();
	PaxosIncarnationShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * _PG_init defines the GUCs.  pg_paxos must be in shared_preload_libraries
 * because later parts (hooks, background worker) need it; say so clearly
 * instead of half-working when it is loaded on demand.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_paxos must be loaded via shared_preload_libraries"),
				 errhint("Add pg_paxos to shared_preload_libraries in postgresql.conf and restart the server.")));

	DefineCustomStringVariable("pg_paxos.node_id",
							   "Name of this node, unique in the cluster.",
							   "Used in proposer ids and in messages.",
							   &PaxosNodeId, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.rpc_timeout",
							"How long a proposer waits for peers to answer one request.",
							"A majority must answer within this time, or the call fails.",
							&PaxosRpcTimeoutMs, 2000, 10, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.paxos_timeout",
							"Longest time one Paxos round may take, retries included.",
							NULL,
							&PaxosTimeoutMs, 30000, 10, 24 * 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("pg_paxos.database",
							   "Database in which the pg_paxos background worker runs.",
							   "The database where CREATE EXTENSION pg_paxos was run.",
							   &PaxosDatabase, "postgres", PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.learn_interval",
							"How often the background worker learns rounds this node missed.",
							NULL,
							&PaxosLearnIntervalMs, 200, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomEnumVariable("pg_paxos.consistency_model",
							 "Consistency of reads of replicated tables.",
							 "strong: before a statement, apply every round chosen when it began; optimistic: read local state.",
							 &PaxosConsistencyModel, PAXOS_CONSISTENCY_STRONG,
							 consistency_options, PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("pg_paxos.point_writes",
							 "Whether an autocommit write of one row by its primary key catches up first, under strong consistency.",
							 "strong: it does; optimistic: it does not, and certification fails it with 40001 "
							 "if its row changed in a round this node had not applied.",
							 &PaxosPointWrites, PAXOS_CONSISTENCY_STRONG,
							 consistency_options, PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.leader_timeout",
							"How long a group's leader may stay silent before another node takes over.",
							"Heartbeats go out five times per timeout.",
							&PaxosLeaderTimeoutMs, 500, 50, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.log_retention",
							"Rounds of the log kept below the lowest round every member has applied.",
							"0 keeps none: rounds every member applied are deleted.",
							&PaxosLogRetention, 10000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.compaction_interval",
							"How often the background worker compacts the log of each group.",
							"0 turns compaction off.",
							&PaxosCompactionIntervalMs, 10000, 0, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.compaction_member_timeout",
							"How long a member that is not heard from holds log compaction back.",
							"A member silent for longer copies a snapshot from a peer when it comes back.",
							&PaxosCompactionMemberTimeoutMs, 300000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("pg_paxos.entry_lifetime",
							"Rounds after its commit within which a transaction's entry may still commit.",
							"An entry that reaches the log later (a leader that froze with it, say) fails certification; "
							"a cancelled transaction is remembered only that long.",
							&PaxosEntryLifetimeRounds, 1000000, 10, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("pg_paxos.flush_local_commits",
							 "Whether a commit whose writes are all in the log still waits for its own WAL flush.",
							 "Off: such a commit is made durable by the log (a majority accepted it) and skips the flush; "
							 "a crash that loses it makes the applier apply the entry instead.",
							 &PaxosFlushLocalCommits, false, PGC_USERSET, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("pg_paxos");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = PaxosShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = PaxosShmemStartup;

	/* one process per concern: a long apply never delays a heartbeat */
	RegisterWorker("pg_paxos worker", "PaxosWorkerMain");
	RegisterWorker("pg_paxos leader", "PaxosLeaderWorkerMain");
	RegisterWorker("pg_paxos batcher", "PaxosBatcherMain");
	PaxosInitCapture();
	PaxosInitLocalWrites();
	PaxosInitStrongReads();
	PaxosProgressInit();
	PaxosInitDdl();
}

/* PaxosTextArg returns a text argument, refusing NULL with a clear error. */
char *
PaxosTextArg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* PaxosTextArgOrNull returns a text argument, or NULL for SQL NULL. */
char *
PaxosTextArgOrNull(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* PaxosInt64Arg returns a bigint argument, refusing NULL. */
int64
PaxosInt64Arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	return PG_GETARG_INT64(argno);
}

/* PaxosCheckRoundNumber: rounds and proposal numbers are never negative. */
void
PaxosCheckRoundNumber(int64 round, const char *name)
{
	if (round < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative: " INT64_FORMAT, name, round)));
}

/*
 * PaxosCheckProposerId refuses ids the core cannot carry and ids that could
 * pass for entries pg_paxos writes itself (membership changes).
 */
void
PaxosCheckProposerId(const char *proposer_id)
{
	if (proposer_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("current_proposer_id must not be empty")));
	if (strlen(proposer_id) >= PX_PROPOSER_ID_MAX - 20)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("current_proposer_id is too long"),
				 errdetail("The limit is %d bytes.", PX_PROPOSER_ID_MAX - 21)));
	if (strncmp(proposer_id, PAXOS_INTERNAL_PREFIX,
				strlen(PAXOS_INTERNAL_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("current_proposer_id must not start with \"%s\"",
						PAXOS_INTERNAL_PREFIX),
				 errhint("That prefix is reserved for entries pg_paxos writes itself.")));
}

/*
 * PaxosUniqueValueId makes the id of a newly proposed value: the proposer id
 * plus 64 random bits, so that two calls that reuse a proposer id never pass
 * each other's value off as their own.
 */
char *
PaxosUniqueValueId(const char *proposer_id)
{
	return psprintf("%s#%016llx", proposer_id,
					(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
}

/*
 * PaxosExtensionSchema is the quoted schema pg_paxos is installed in, used
 * to qualify RPC calls to peers (installed the same way on every node).
 */
const char *
PaxosExtensionSchema(void)
{
	static char *schema = NULL;

	if (schema == NULL)
	{
		Relation	rel;
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tuple;
		Oid			nspoid = InvalidOid;

		rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum("pg_paxos"));
		scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
		tuple = systable_getnext(scan);
		if (HeapTupleIsValid(tuple))
			nspoid = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);

		if (!OidIsValid(nspoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension pg_paxos is not created in this database"),
					 errhint("Run CREATE EXTENSION pg_paxos.")));
		schema = MemoryContextStrdup(TopMemoryContext,
									 quote_identifier(get_namespace_name(nspoid)));
	}
	return schema;
}

/*
 * PaxosStringListCopy copies a list of C strings into a memory context
 * (list_copy_deep is for lists of nodes only).  Used to take SPI results
 * out of SPI: switching contexts around an SPI call is not enough, since
 * every SPI execution leaves the current context at SPI's own.
 */
List *
PaxosStringListCopy(List *strings, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	List	   *copy = NIL;
	ListCell   *lc;

	foreach(lc, strings)
		copy = lappend(copy, pstrdup((char *) lfirst(lc)));
	MemoryContextSwitchTo(old);
	return copy;
}

/*
 * PaxosTrimMessage copies a libpq message without its trailing newlines, so
 * that it reads well inside our own messages.
 */
char *
PaxosTrimMessage(const char *message)
{
	char	   *copy = pstrdup(message ? message : "");
	int			len = strlen(copy);

	while (len > 0 && (copy[len - 1] == '\n' || copy[len - 1] == ' '))
		copy[--len] = '\0';
	return copy;
}

/*
 * PaxosBecomeSuperuser switches to the bootstrap superuser for pg_paxos's
 * own work on behalf of any user's statement (capture, commit, catching up
 * for a strong read): that work reads and writes pgp_metadata, which only
 * the cluster's role may touch, and runs no SQL of the user's.
 * PaxosRestoreUser switches back; use it in PG_FINALLY.
 */
void
PaxosBecomeSuperuser(PaxosSavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* PaxosRestoreUser undoes PaxosBecomeSuperuser. */
void
PaxosRestoreUser(const PaxosSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * PaxosLockGroup takes the advisory lock (lock_class, hash of group) in the
 * lock manager directly, as pg_advisory_lock does, without a query: it is
 * on the commit and apply paths.  Held until the end of the transaction,
 * or of the session (then released with PaxosUnlockGroup).  Without wait,
 * returns false at once if the lock is taken.
 */
bool
PaxosLockGroup(int lock_class, const char *group_id, bool session, bool wait)
{
	LOCKTAG		tag;
	uint32		key = DatumGetUInt32(hash_any((const unsigned char *) group_id,
											  strlen(group_id)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, lock_class, key, 2);
	return LockAcquire(&tag, ExclusiveLock, session, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/* PaxosUnlockGroup releases a session-level PaxosLockGroup lock. */
void
PaxosUnlockGroup(int lock_class, const char *group_id)
{
	LOCKTAG		tag;
	uint32		key = DatumGetUInt32(hash_any((const unsigned char *) group_id,
											  strlen(group_id)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, lock_class, key, 2);
	(void) LockRelease(&tag, ExclusiveLock, true);
}

/*
 * PaxosKeptPlan prepares a statement once per backend and keeps it: the
 * statements the log machinery runs for every round and every entry would
 * otherwise be parsed and planned each time.  The plan is generic from the
 * start: these are key lookups, and planning them anew for each call's
 * values (what PostgreSQL does for a prepared statement's first runs) is
 * the cost we keep them to avoid.  Call while connected to SPI.
 */
SPIPlanPtr
PaxosKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											   CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "pg_paxos: could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "pg_paxos: could not keep a plan");
		*cache = plan;
	}
	return *cache;
}

/*
 * PaxosBackendHash makes a hash table that lives as long as the backend:
 * the caches of tables, statements and certification keys.  Keys are
 * fixed-size binary values, or NUL-terminated strings (string_keys).
 */
HTAB *
PaxosBackendHash(const char *name, Size keysize, Size entrysize, bool string_keys)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = TopMemoryContext;
	return hash_create(name, 64, &ctl,
					   HASH_ELEM | HASH_CONTEXT | (string_keys ? HASH_STRINGS : HASH_BLOBS));
}

/*
 * PaxosGroupTest runs a kept one-row boolean query about a group ($1 is
 * its id), such as "does it have any X rows?".  Connected to SPI.
 */
bool
PaxosGroupTest(SPIPlanPtr *cache, const char *sql, const char *group_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_plan(PaxosKeptPlan(cache, sql, 1, types), values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "pg_paxos: query failed: %s", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}
