/*
 * worker.c
 *    The pg_paxos background worker: makes this node learn, by itself, the
 *    rounds of its groups that it missed, so that a node that was down or
 *    cut off catches up without anyone calling paxos_learn_log, and the
 *    last round of a burst of appends (learned by peers only with the next
 *    request) does not stay unknown.
 *
 * It is also the node's applier: woken as soon as a round is decided here
 * (apply_progress.c), it certifies and applies what it learned, each in a
 * transaction of its own, and publishes how far it applied, which strong
 * reads wait for.  Looking for new groups and for snapshots to copy waits
 * for the next interval.
 *
 * One worker per server, connected to the database pg_paxos.database.
 * When woken, and every pg_paxos.learn_interval, it looks at each group:
 * rounds up to the highest one accepted here that are all known as chosen
 * need nothing; otherwise rounds below the
 * highest one accepted here that are not known as chosen are learned; the
 * highest one only once it stayed unknown for a whole interval, so that the
 * worker does not compete with an append still in flight; and every
 * PAXOS_CATCHUP_EVERY intervals it asks the group how far the log goes, to
 * learn rounds it has not heard of at all.  Learning goes through
 * PaxosLearnLog, which copies chosen entries from peers before it proposes
 * any no-op.  Failures (no majority, a peer down) are logged when the state
 * of a group changes, not at every attempt.
 *
 * Before learning, it copies a snapshot of a group from a peer when the
 * rounds this node needs are compacted on its peers (snapshot.c); every
 * pg_paxos.compaction_interval it compacts the log of each group that
 * replicates tables (compaction.c).  Each in a transaction of its own.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Ask the group for its highest round every this many intervals. */
#define PAXOS_CATCHUP_EVERY 10

/* What the worker remembers about a group between intervals. */
typedef struct WorkerGroup
{
	char		group_id[NAMEDATALEN * 2];
	int64		learned_upto;	/* every round up to here is known chosen */
	int64		last_top;		/* highest accepted round seen last time */
	TimestampTz top_since;		/* since when it is the highest */
	bool		failing;		/* last attempt failed (for logging) */
	bool		replicating;	/* the group replicates tables: apply it */
	int64		scanned_upto;	/* rounds looked at for "replicate" entries */
	bool		seen;			/* still exists (mark and sweep) */
	TimestampTz compacted_at;	/* last compaction */
	bool		snapshot_failing;	/* (for logging, as failing) */
	bool		compact_failing;
} WorkerGroup;

typedef void (*GroupStep) (WorkerGroup *wg);

#define MAX_WORKER_GROUPS 64

char	   *PaxosDatabase = NULL;
int			PaxosLearnIntervalMs = 200;

static WorkerGroup groups[MAX_WORKER_GROUPS];
static int	ngroups = 0;

PGDLLEXPORT void PaxosWorkerMain(Datum arg);

static WorkerGroup *FindGroup(const char *group_id);
static List *ListGroups(void);
static void LearnGroup(WorkerGroup *wg, bool catch_up);
static void ApplyGroup(WorkerGroup *wg);
static void RunOnce(bool full, bool catch_up_now);
static void RunStep(WorkerGroup *wg, GroupStep step, const char *what, bool *failing);
static void SnapshotStep(WorkerGroup *wg);
static void CompactStep(WorkerGroup *wg);
static void LearnStep(WorkerGroup *wg);
static void ApplyStep(WorkerGroup *wg);

/* FindGroup returns the worker's entry for a group, creating it. */
static WorkerGroup *
FindGroup(const char *group_id)
{
	int			i;

	for (i = 0; i < ngroups; i++)
		if (strcmp(groups[i].group_id, group_id) == 0)
			return &groups[i];
	if (ngroups == MAX_WORKER_GROUPS || strlen(group_id) >= sizeof(groups[0].group_id))
		return NULL;
	memset(&groups[ngroups], 0, sizeof(WorkerGroup));
	strlcpy(groups[ngroups].group_id, group_id, sizeof(groups[0].group_id));
	groups[ngroups].learned_upto = -1;
	groups[ngroups].last_top = -1;
	groups[ngroups].scanned_upto = -1;
	return &groups[ngroups++];
}

/* ListGroups names the groups of this node (in the current context). */
static List *
ListGroups(void)
{
	MemoryContext outer = CurrentMemoryContext;
	static SPIPlanPtr plan = NULL;
	List	   *result = NIL;
	uint64		i;

	SPI_connect();
	if (SPI_execute_plan(PaxosKeptPlan(&plan, "SELECT group_id FROM pgp_metadata.\"group\" ORDER BY 1",
									   0, NULL), NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not list groups");
	MemoryContextSwitchTo(outer);
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return result;
}

/*
 * LearnGroup learns what this node is missing of one group (see the file
 * header for which rounds), and moves the group's learned_upto forward.
 */
static void
LearnGroup(WorkerGroup *wg, bool catch_up)
{
	int64		top;
	int64		target;
	int64		first_missing;
	int			n;

	SPI_connect();
	top = PaxosLocalMaxAccepted(wg->group_id);
	SPI_finish();

	target = top;

	/* everything up to the top decided already (the leader's confirmations) */
	if (!catch_up && top > wg->learned_upto)
	{
		SPI_connect();
		n = RoundStoreUndecidedIn(wg->group_id, wg->learned_upto + 1, top,
								  &first_missing, 1);
		SPI_finish();
		if (n == 0)
		{
			wg->learned_upto = top;
			return;
		}
	}
	if (top != wg->last_top)
	{
		wg->last_top = top;
		wg->top_since = GetCurrentTimestamp();
	}
	if (catch_up)
		target = Max(target, PaxosMaxGroupRound(wg->group_id, true));
	else if (!TimestampDifferenceExceeds(wg->top_since, GetCurrentTimestamp(),
										PaxosLearnIntervalMs))
		target = top - 1;		/* the newest round may still be in flight */
	if (target <= wg->learned_upto)
		return;

	(void) PaxosLearnLog(wg->group_id, wg->learned_upto + 1, target);

	SPI_connect();
	n = RoundStoreUndecidedIn(wg->group_id, wg->learned_upto + 1, target,
							  &first_missing, 1);
	SPI_finish();
	wg->learned_upto = n > 0 ? first_missing - 1 : target;
}

/*
 * ApplyGroup applies, in the background, what this node learned, for a
 * group that replicates tables (a plain log of values is executed only on
 * demand, by paxos_apply_log, as in the pg_paxos README).
 */
static void
ApplyGroup(WorkerGroup *wg)
{
	if (wg->learned_upto < 0)
		return;
	if (!wg->replicating && wg->scanned_upto < wg->learned_upto)
	{
		Oid			types[3] = {TEXTOID, INT8OID, INT8OID};
		Datum		values[3];
		bool		isnull;

		SPI_connect();
		values[0] = CStringGetTextDatum(wg->group_id);
		values[1] = Int64GetDatum(wg->scanned_upto);
		values[2] = Int64GetDatum(wg->learned_upto);
		if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM pgp_metadata.replicated_tables"
								  " WHERE group_id = $1) OR EXISTS (SELECT 1 FROM pgp_metadata.round"
								  " WHERE group_id = $1 AND round_num > $2 AND round_num <= $3"
								  " AND value_id LIKE 'pg_paxos:replicate:%')",
								  3, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not tell whether group \"%s\" replicates tables",
				 wg->group_id);
		wg->replicating = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		wg->scanned_upto = wg->learned_upto;
	}
	if (wg->replicating)
		(void) PaxosApplyUpTo(wg->group_id, wg->learned_upto, APPLY_YIELD_ON_LOCK);
}

/*
 * SnapshotStep copies a snapshot of the group from a peer if this node
 * needs rounds its peers have compacted; learning starts over from there.
 */
static void
SnapshotStep(WorkerGroup *wg)
{
	char	   *source;
	int64		needed;

	if (PaxosSnapshotNeeded(wg->group_id, &source, &needed) &&
		PaxosCopySnapshot(wg->group_id, source, needed))
	{
		wg->learned_upto = -1;
		wg->last_top = -1;
	}
}

/* Whether this round of the worker asks the group how far the log goes. */
static bool catch_up = false;

/*
 * LearnStep learns what this node misses of a group, and, for a group
 * that replicates tables, certifies it, here rather than through the
 * node's acceptor: the step is a transaction of its own, which holds the
 * certification lock only from then on (certify.c).  Unless shared memory
 * says the rounds are certified (on the leader, its batcher did), it goes
 * straight to certifying, which finds where certification stands anyway:
 * asking the tables first would be the same query twice.
 */
static void
LearnStep(WorkerGroup *wg)
{
	int			n;

	LearnGroup(wg, catch_up);
	if (wg->replicating && wg->learned_upto >= 0 &&
		!PaxosCertifiedPublished(wg->group_id, wg->learned_upto))
		(void) PaxosCertifyHere(wg->group_id, wg->learned_upto, &n);
}

/*
 * ApplyStep applies what this node learned, once the ACCESS EXCLUSIVE
 * locks a TRUNCATE or DDL round missed last time are granted.
 */
static void
ApplyStep(WorkerGroup *wg)
{
	if (PaxosLockExclusiveTables())
		ApplyGroup(wg);
}

/* CompactStep compacts the log of a group that replicates tables. */
static void
CompactStep(WorkerGroup *wg)
{
	PaxosCompactGroup(wg->group_id);
}

/*
 * RunStep runs one step of the work on a group in a transaction of its
 * own; a failure is logged once until the step succeeds again, and does
 * not stop the other steps or groups.
 */
static void
RunStep(WorkerGroup *wg, GroupStep step, const char *what, bool *failing)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		step(wg);
		PopActiveSnapshot();
		CommitTransactionCommand();
		*failing = false;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		if (!*failing)
			ereport(LOG,
					(errmsg("pg_paxos worker: could not %s group \"%s\": %s",
							what, wg->group_id, edata->message),
					 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		FreeErrorData(edata);
		*failing = true;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
}

/*
 * RunOnce looks at every group once, each in a transaction of its own, so
 * that one failing group does not hold back the others.
 */
static void
RunOnce(bool full, bool catch_up_now)
{
	int			i;

	if (full)
	{
		List	   *names;
		ListCell   *lc;
		bool		installed;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		installed = OidIsValid(get_extension_oid("pg_paxos", true));
		names = installed ? ListGroups() : NIL;
		for (i = 0; i < ngroups; i++)
			groups[i].seen = false;
		foreach(lc, names)
		{
			WorkerGroup *wg = FindGroup((char *) lfirst(lc));

			if (wg != NULL)
				wg->seen = true;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	for (i = 0; i < ngroups; i++)
	{
		WorkerGroup *wg = &groups[i];
		bool		was_failing;

		if (!wg->seen)
		{
			/* a group this node left: forget it */
			groups[i] = groups[--ngroups];
			i--;
			continue;
		}

		if (full)
			RunStep(wg, SnapshotStep, "copy a snapshot of", &wg->snapshot_failing);

		catch_up = catch_up_now;
		was_failing = wg->failing;
		RunStep(wg, LearnStep, "learn", &wg->failing);
		if (!wg->failing)
			RunStep(wg, ApplyStep, "apply", &wg->failing);

		/* a TRUNCATE or DDL round missed its lock: take it, go on now */
		if (!wg->failing && PaxosExclusiveTablesPending())
			RunStep(wg, ApplyStep, "apply", &wg->failing);
		if (was_failing && !wg->failing)
			ereport(LOG,
					(errmsg("pg_paxos worker: group \"%s\" is learning again, up to round " INT64_FORMAT,
							wg->group_id, wg->learned_upto)));

		if (wg->replicating && PaxosCompactionIntervalMs > 0 &&
			TimestampDifferenceExceeds(wg->compacted_at, GetCurrentTimestamp(),
									   PaxosCompactionIntervalMs))
		{
			wg->compacted_at = GetCurrentTimestamp();
			RunStep(wg, CompactStep, "compact the log of", &wg->compact_failing);
		}
	}
}

/*
 * PaxosWorkerMain is the worker's entry point: connect, then learn every
 * interval until the server shuts down (SIGTERM).
 */
void
PaxosWorkerMain(Datum arg)
{
	TimestampTz caught_up_at = 0;
	TimestampTz looked_at = 0;

	PaxosWorkerConnect("pg_paxos worker");
	PaxosSetApplier(MyLatch);

	/*
	 * What the worker commits can be done again after a crash (applying
	 * and its cursor commit together; learned rounds are known to peers;
	 * compaction and snapshots restart): no need to wait for WAL flushes.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION);

	/*
	 * The worker applies as a replica; set once, since every change of
	 * session_replication_role empties the plan cache (apply.c).
	 */
	SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION);

	for (;;)
	{
		bool		full;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 PaxosLearnIntervalMs, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		/*
		 * Woken for a decided round, it only learns, certifies and applies;
		 * every interval it also looks for groups and snapshots to copy.
		 */
		full = TimestampDifferenceExceeds(looked_at, GetCurrentTimestamp(),
										  PaxosLearnIntervalMs);
		if (full)
			looked_at = GetCurrentTimestamp();
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pgstat_report_activity(STATE_RUNNING, "learning");
		if (TimestampDifferenceExceeds(caught_up_at, GetCurrentTimestamp(),
									   PAXOS_CATCHUP_EVERY * PaxosLearnIntervalMs))
		{
			caught_up_at = GetCurrentTimestamp();
			RunOnce(full, true);
		}
		else
			RunOnce(full, false);

		/*
		 * Read the answers still in flight: an acceptor's transaction, and
		 * the round's row lock, end only once its answer is read, and a
		 * large late one (a 10 MB value in a phase 1b) would otherwise hold
		 * them until this worker next calls that peer, stalling every
		 * other learner of the round there.
		 */
		FanoutFlushDeferred(PaxosRpcTimeoutMs);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
}
