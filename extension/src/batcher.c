/*
 * batcher.c
 *    The pg_paxos batcher: a background worker that appends the queued
 *    transaction entries of this node (see batch.c) one round at a time.
 *
 * Being one process, it is one proposer: its phase 1 asks the acceptors
 * for a standing promise (its ballot, for every round from this one on),
 * so while this node leads, every batch costs one round trip to the
 * acceptors and one row per acceptor (proposer.c).  It learns each chosen
 * round in its own transaction (this node's acceptor is not asked to),
 * and the other members learn it with the next round's accept, which
 * carries it, or, when nothing follows, as soon as the batcher is idle:
 * no separate decision message per round under load.  A batch that fails
 * (no majority, a timeout) is reported to each waiting backend as "in
 * doubt": its round may still be chosen, and the origin settles that
 * (submit.c).
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

/* Largest batch, in bytes of entries (one entry may be larger alone). */
#define BATCH_MAX_BYTES (4 * 1024 * 1024)

PGDLLEXPORT void PaxosBatcherMain(Datum arg);

static void RunBatch(MemoryContext context);

/*
 * RunBatch appends the entries of one group queued now as one round, has
 * it certified, and posts each entry's result.
 */
static void
RunBatch(MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	List	   *entries;
	List	   *tickets;
	char	   *group_id = PaxosBatchTake(BATCH_MAX_BYTES, &entries, &tickets);
	ListCell   *lc;
	int			i;

	if (group_id == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		StringInfoData value;
		char	   *value_id;
		int64		round;
		int64	   *conflicts;
		int			n;

		MemoryContextSwitchTo(context);
		initStringInfo(&value);
		appendStringInfoChar(&value, '[');
		foreach(lc, entries)
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoChar(&value, ',');
			appendStringInfoString(&value, (char *) lfirst(lc));
		}
		appendStringInfoChar(&value, ']');
		value_id = psprintf(PAXOS_TXN_PREFIX "batch/%s/%016llx", PaxosOwnNodeId(),
							(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
		round = PaxosAppendAlone(group_id, value_id, value.data);
		PopActiveSnapshot();
		CommitTransactionCommand();

		/* certified here, in a transaction of its own (certify.c) */
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		MemoryContextSwitchTo(context);
		conflicts = PaxosCertifyHere(group_id, round, &n);
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(context);
		i = 0;
		foreach(lc, tickets)
		{
			PaxosBatchFinish((PaxosBatchTicket *) lfirst(lc), round, i,
							 i < n ? conflicts[i] : -1,
							 i < n ? NULL : "the round holds fewer entries than were sent");
			i++;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("pg_paxos batcher: a round of %d transactions of group \"%s\" failed: %s",
						list_length(entries), group_id, edata->message)));
		foreach(lc, tickets)
			PaxosBatchFinish((PaxosBatchTicket *) lfirst(lc), -1, 0, -1, edata->message);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(context);
}

/* PaxosBatcherMain: connect, then append batches as they come. */
void
PaxosBatcherMain(Datum arg)
{
	MemoryContext context;

	PaxosWorkerConnect("pg_paxos batcher");
	PaxosLearnInProcess = true;
	PaxosAskStanding = true;
	context = AllocSetContextCreate(TopMemoryContext, "pg_paxos batch",
									ALLOCSET_DEFAULT_SIZES);
	PaxosBatchSetBatcher(MyLatch);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		while (PaxosBatchPending())
		{
			pgstat_report_activity(STATE_RUNNING, "appending a batch");
			RunBatch(context);
			CHECK_FOR_INTERRUPTS();
		}
		/* the last round's decision, carried or kept for busy members: deliver it now */
		PaxosFlushCarriedLearn();
		FanoutFlushDeferred(PaxosRpcTimeoutMs);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
