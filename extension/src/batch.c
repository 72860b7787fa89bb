/*
 * batch.c
 *    Group commit on the leader: transactions that commit at the same time
 *    (on this node, or forwarded here by other nodes) share one log round.
 *
 * A committing backend puts its entry in a queue in shared memory and
 * sleeps; the batcher (a background worker, see batcher.c) takes every
 * queued entry of a group, appends them as one round (a JSON array), has
 * the round certified, and posts each entry's round, position and
 * certification result back to its backend.  Entries that arrive while a
 * round is in flight wait for the next one: the busier the node, the
 * larger the batches, and one round trip and one WAL flush per acceptor
 * serve them all.
 *
 * The queue is a byte arena (records in arrival order) plus one result
 * slot per backend.  An entry too large for the arena is not batched: its
 * backend appends it alone (capture.c).
 */
#include "pg_paxos.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "access/twophase.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Bytes of queued entries the arena holds; a round takes at most half. */
#define BATCH_ARENA_SIZE (8 * 1024 * 1024)
#define BATCH_MAX_ENTRY (BATCH_ARENA_SIZE / 4)

typedef enum SlotState
{
	SLOT_IDLE = 0,
	SLOT_QUEUED,				/* in the arena, waiting for a round */
	SLOT_TAKEN,					/* in a round being appended */
	SLOT_DONE,					/* round, index and conflict are set */
	SLOT_FAILED					/* error is set */
} SlotState;

typedef struct BatchSlot
{
	SlotState	state;
	uint64		ticket;			/* which submission the slot serves */
	int64		round;
	int			index;
	int64		conflict;
	char		error[256];
} BatchSlot;

/* A queued entry in the arena, followed by its text and a NUL. */
typedef struct BatchRecord
{
	int			slot;
	uint64		ticket;
	Size		len;
	char		group_id[PAXOS_GROUP_ID_MAX];
} BatchRecord;

typedef struct BatchShared
{
	LWLock	   *lock;
	Latch	   *batcher_latch;	/* the batcher's, once it runs */
	uint64		next_ticket;
	Size		used;			/* bytes of the arena in use */
	int			nslots;
	BatchSlot  *slots;			/* nslots, after the arena */
	char		arena[BATCH_ARENA_SIZE];
} BatchShared;

static BatchShared *batch = NULL;

static void WakeSlot(int slotno);

#define RECORD_SIZE(len) MAXALIGN(sizeof(BatchRecord) + (len) + 1)

/* PaxosBatchShmemSize is what the queue needs in shared memory. */
Size
PaxosBatchShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(BatchShared)),
					mul_size(MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts + 8,
							 sizeof(BatchSlot)));
}

/* PaxosBatchShmemInit creates or attaches to the queue (shmem startup). */
void
PaxosBatchShmemInit(void)
{
	bool		found;

	batch = ShmemInitStruct("pg_paxos batch queue", PaxosBatchShmemSize(), &found);
	if (!found)
	{
		memset(batch, 0, sizeof(BatchShared));
		batch->lock = &(GetNamedLWLockTranche("pg_paxos"))[0].lock;
		batch->nslots = MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts + 8;
		batch->slots = (BatchSlot *) ((char *) batch + MAXALIGN(sizeof(BatchShared)));
		memset(batch->slots, 0, sizeof(BatchSlot) * batch->nslots);
		batch->next_ticket = 1;
	}
}

/* PaxosBatchFits: can an entry this large go through the queue? */
bool
PaxosBatchFits(Size len)
{
	return len <= BATCH_MAX_ENTRY;
}

/*
 * PaxosBatchSubmit queues a transaction entry of a group and waits until
 * the batcher has appended and certified it; fills result.  Errors if the
 * batcher reports one or does not answer within pg_paxos.paxos_timeout
 * (the entry may then still be chosen: the caller says so).
 */
void
PaxosBatchSubmit(const char *group_id, const char *entry, PaxosBatchResult *result)
{
	int			me = MyProc->pgprocno;
	BatchSlot  *slot = &batch->slots[me];
	Size		len = strlen(entry);
	TimestampTz deadline;
	uint64		ticket;
	SlotState	state = SLOT_QUEUED;

	if (!PaxosBatchFits(len))
		elog(ERROR, "pg_paxos: entry of %zu bytes is too large to batch", len);
	if (strlen(group_id) >= PAXOS_GROUP_ID_MAX)
		elog(ERROR, "pg_paxos: group id too long to batch");

	/* wait for room: the batcher empties the arena round by round */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PaxosTimeoutMs);
	for (;;)
	{
		LWLockAcquire(batch->lock, LW_EXCLUSIVE);
		if (batch->used + RECORD_SIZE(len) <= BATCH_ARENA_SIZE)
			break;
		LWLockRelease(batch->lock);
		if (GetCurrentTimestamp() > deadline)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the commit queue of this node stayed full for %d ms", PaxosTimeoutMs)));
		pg_usleep(1000);
		CHECK_FOR_INTERRUPTS();
	}
	{
		BatchRecord *rec = (BatchRecord *) (batch->arena + batch->used);

		ticket = batch->next_ticket++;
		rec->slot = me;
		rec->ticket = ticket;
		rec->len = len;
		strlcpy(rec->group_id, group_id, sizeof(rec->group_id));
		memcpy((char *) (rec + 1), entry, len + 1);
		batch->used += RECORD_SIZE(len);
		slot->state = SLOT_QUEUED;
		slot->ticket = ticket;
	}
	LWLockRelease(batch->lock);
	if (batch->batcher_latch != NULL)
		SetLatch(batch->batcher_latch);

	/*
	 * Wait for the result without being interrupted: once queued, the entry
	 * may be chosen, and the transaction must learn its fate.  The batcher
	 * answers within pg_paxos.paxos_timeout; past that (and a margin), give
	 * up and say the outcome is unknown.
	 */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PaxosTimeoutMs + 5000);
	HOLD_INTERRUPTS();
	for (;;)
	{
		/* reset first: a result posted after the check sets the latch again */
		ResetLatch(MyLatch);
		LWLockAcquire(batch->lock, LW_SHARED);
		if (slot->ticket == ticket)
			state = slot->state;
		LWLockRelease(batch->lock);
		if (state == SLOT_DONE || state == SLOT_FAILED)
			break;
		if (GetCurrentTimestamp() > deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
	}
	RESUME_INTERRUPTS();

	LWLockAcquire(batch->lock, LW_EXCLUSIVE);
	memset(result, 0, sizeof(*result));
	result->round = slot->round;
	result->index = slot->index;
	result->conflict = slot->conflict;
	if (slot->ticket == ticket)
		state = slot->state;
	switch (state)
	{
		case SLOT_DONE:
			result->ok = true;
			break;
		case SLOT_QUEUED:
			/* never taken: take it back, so that it is never appended */
			PaxosBatchWithdraw(me, ticket);
			strlcpy(result->error, "the batcher did not take the entry in time",
					sizeof(result->error));
			break;
		case SLOT_FAILED:
			/* the round may have been chosen anyway (a learner finds it) */
			strlcpy(result->error, slot->error, sizeof(result->error));
			result->in_doubt = true;
			break;
		default:
			strlcpy(result->error, "no answer from the batcher in time",
					sizeof(result->error));
			result->in_doubt = true;
			break;
	}
	slot->state = SLOT_IDLE;
	slot->ticket = 0;
	LWLockRelease(batch->lock);
}

/*
 * PaxosBatchWithdraw removes a queued record from the arena (lock held
 * exclusively).
 */
void
PaxosBatchWithdraw(int slotno, uint64 ticket)
{
	Size		off = 0;

	while (off < batch->used)
	{
		BatchRecord *rec = (BatchRecord *) (batch->arena + off);
		Size		size = RECORD_SIZE(rec->len);

		if (rec->slot == slotno && rec->ticket == ticket)
		{
			memmove(batch->arena + off, batch->arena + off + size, batch->used - off - size);
			batch->used -= size;
			return;
		}
		off += size;
	}
}

/* PaxosBatchSetBatcher publishes the batcher's latch (batcher start). */
void
PaxosBatchSetBatcher(Latch *latch)
{
	int			i;

	LWLockAcquire(batch->lock, LW_EXCLUSIVE);
	batch->batcher_latch = latch;

	/* a batcher that died mid-round left its entries in doubt */
	for (i = 0; i < batch->nslots; i++)
		if (batch->slots[i].state == SLOT_TAKEN)
		{
			batch->slots[i].state = SLOT_FAILED;
			strlcpy(batch->slots[i].error,
					"the batcher restarted during the round: the entry may still be chosen",
					sizeof(batch->slots[i].error));
			WakeSlot(i);
		}
	LWLockRelease(batch->lock);
}

/*
 * PaxosBatchTake takes the queued entries of one group (the first group
 * with any), oldest first, up to max_bytes of entries (at least one), and
 * marks them taken.  Returns the group (NULL if the queue is empty) and the
 * entries with their slots, allocated in the current memory context.
 */
char *
PaxosBatchTake(Size max_bytes, List **entries, List **tickets)
{
	char	   *group_id = NULL;
	Size		off = 0;
	Size		taken = 0;
	Size		keep = 0;

	*entries = NIL;
	*tickets = NIL;
	LWLockAcquire(batch->lock, LW_EXCLUSIVE);
	while (off < batch->used)
	{
		BatchRecord *rec = (BatchRecord *) (batch->arena + off);
		Size		size = RECORD_SIZE(rec->len);
		bool		take;

		if (group_id == NULL)
			group_id = pstrdup(rec->group_id);
		take = strcmp(rec->group_id, group_id) == 0 &&
			(taken == 0 || taken + rec->len <= max_bytes) &&
			batch->slots[rec->slot].ticket == rec->ticket;
		if (take)
		{
			PaxosBatchTicket *t = palloc(sizeof(PaxosBatchTicket));

			t->slot = rec->slot;
			t->ticket = rec->ticket;
			*entries = lappend(*entries, pnstrdup((char *) (rec + 1), rec->len));
			*tickets = lappend(*tickets, t);
			batch->slots[rec->slot].state = SLOT_TAKEN;
			taken += rec->len;
		}
		else
		{
			/* keep it: slide it down over what was taken */
			if (keep != off)
				memmove(batch->arena + keep, batch->arena + off, size);
			keep += size;
		}
		off += size;
	}
	batch->used = keep;
	LWLockRelease(batch->lock);
	return group_id;
}

/*
 * PaxosBatchFinish posts the result of a taken entry: its round and
 * position and certification result, or an error (error != NULL).
 */
void
PaxosBatchFinish(const PaxosBatchTicket *t, int64 round, int index,
				 int64 conflict, const char *error)
{
	BatchSlot  *slot = &batch->slots[t->slot];

	LWLockAcquire(batch->lock, LW_EXCLUSIVE);
	if (slot->ticket == t->ticket && slot->state == SLOT_TAKEN)
	{
		slot->round = round;
		slot->index = index;
		slot->conflict = conflict;
		if (error != NULL)
		{
			slot->state = SLOT_FAILED;
			strlcpy(slot->error, error, sizeof(slot->error));
		}
		else
			slot->state = SLOT_DONE;
		WakeSlot(t->slot);
	}
	LWLockRelease(batch->lock);
}

/*
 * WakeSlot wakes the backend that owns a slot (slots are numbered by
 * pgprocno): only the backends whose entries are done, not every waiter.
 */
static void
WakeSlot(int slotno)
{
	SetLatch(&GetPGProcByNumber(slotno)->procLatch);
}

/* PaxosBatchPending: is anything queued? */
bool
PaxosBatchPending(void)
{
	bool		pending;

	LWLockAcquire(batch->lock, LW_SHARED);
	pending = batch->used > 0;
	LWLockRelease(batch->lock);
	return pending;
}
