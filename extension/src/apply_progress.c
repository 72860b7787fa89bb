/*
 * apply_progress.c
 *    How far this node has accepted and applied each group's log, in
 *    shared memory: a strong read takes this node's highest accepted round
 *    from here instead of asking its own acceptor, and waits for the
 *    background applier instead of applying the rounds itself.
 *
 * The worker (worker.c) is the node's applier: it is woken when a round is
 * decided here (the leader's confirmation, a copied round), applies what it
 * learned, and publishes the round it reached when that transaction
 * commits.  A strong read that needs round r waits on a condition variable
 * until the published round reaches r; if it does not in time (the round
 * is not decided yet, or the worker waits for a lock the statement holds)
 * the caller falls back to applying through its own acceptor
 * (strong_read.c).  Publishing at commit, never before, is what makes
 * waiting enough: a published round is visible to a new snapshot.  An
 * accepted round is published at commit too, before the acceptor answers:
 * no proposer can count an acceptance this table does not show yet.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define PROGRESS_GROUPS 32
#define PENDING_MAX 8

typedef struct GroupProgress
{
	char		group_id[PAXOS_GROUP_ID_MAX];
	int64		applied;
	int64		certified;
	int64		accepted;		/* highest round with an accepted value */
	bool		accepted_known; /* read from the round table since start */
	int64		decided_through;	/* every round up to it is decided here */
	/* pending only: rounds a transaction found or made decided, or -1 */
	int64		decided_from;
	int64		decided_to;
	/* a snapshot copy is taking the group's tables (snapshot.c) */
	bool		copying;
	/* the majority's highest round, asked once for concurrent statements */
	bool		asking;			/* a question is in flight */
	uint64		asked;			/* number of the last question sent */
	uint64		answered;		/* number of the last question answered */
	int64		answer;
} GroupProgress;

typedef struct ProgressShared
{
	slock_t		mutex;
	Latch	   *applier;		/* the worker's, once it runs */
	ConditionVariable advanced;	/* applied rounds, answers */
	int			ngroups;
	GroupProgress groups[PROGRESS_GROUPS];
} ProgressShared;

static ProgressShared *progress = NULL;

/* What the current transaction publishes, or wakes, when it commits. */
static GroupProgress pending[PENDING_MAX];
static int	npending = 0;
static bool wake_at_commit = false;
static bool lost_accepted = false;

static void ProgressXactCallback(XactEvent event, void *arg);
static GroupProgress *PendingFor(const char *group_id);
static GroupProgress *FindProgress(const char *group_id, bool create);
static bool Published(const char *group_id, GroupProgress *copy);

Size
PaxosProgressShmemSize(void)
{
	return MAXALIGN(sizeof(ProgressShared));
}

/* PaxosProgressShmemInit creates or attaches to the table (shmem startup). */
void
PaxosProgressShmemInit(void)
{
	bool		found;

	progress = ShmemInitStruct("pg_paxos apply progress", PaxosProgressShmemSize(), &found);
	if (!found)
	{
		memset(progress, 0, sizeof(ProgressShared));
		SpinLockInit(&progress->mutex);
		ConditionVariableInit(&progress->advanced);
	}
}

/* PaxosProgressInit hooks the commit callback into a backend (_PG_init). */
void
PaxosProgressInit(void)
{
	RegisterXactCallback(ProgressXactCallback, NULL);
}

/* PaxosSetApplier publishes the worker's latch (worker start). */
void
PaxosSetApplier(Latch *latch)
{
	SpinLockAcquire(&progress->mutex);
	progress->applier = latch;
	SpinLockRelease(&progress->mutex);
}

/* PaxosWakeApplier wakes the worker now. */
void
PaxosWakeApplier(void)
{
	Latch	   *latch;

	SpinLockAcquire(&progress->mutex);
	latch = progress->applier;
	SpinLockRelease(&progress->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * PaxosWakeApplierAtCommit has the worker woken when the current
 * transaction commits (it learned a round: the worker can apply it then).
 */
void
PaxosWakeApplierAtCommit(void)
{
	wake_at_commit = true;
}

/*
 * PaxosNoteAppliedAtCommit publishes, when the current transaction
 * commits, that the group is applied up to round here.  Beyond a few
 * groups in one transaction it is not published: waiters then fall back.
 */
void
PaxosNoteAppliedAtCommit(const char *group_id, int64 round)
{
	GroupProgress *p = PendingFor(group_id);

	if (p != NULL)
		p->applied = Max(p->applied, round);
}

/* PaxosNoteCertifiedAtCommit: the same for the certification cursor. */
void
PaxosNoteCertifiedAtCommit(const char *group_id, int64 round)
{
	GroupProgress *p = PendingFor(group_id);

	if (p != NULL)
		p->certified = Max(p->certified, round);
}

/*
 * PaxosCertifiedPublished tells whether committed certifications published
 * the group as certified up to round here (false: not known, no query).
 */
bool
PaxosCertifiedPublished(const char *group_id, int64 round)
{
	GroupProgress g;

	return Published(group_id, &g) && g.certified >= round;
}

/*
 * PaxosCertifiedAtLeast tells whether the group is certified up to round
 * here: from shared memory when it says so, otherwise from the tables
 * (PaxosCertifiedUpTo, a query).
 */
bool
PaxosCertifiedAtLeast(const char *group_id, int64 round)
{
	return PaxosCertifiedPublished(group_id, round) ||
		PaxosCertifiedUpTo(group_id) >= round;
}

/*
 * PaxosNoteAcceptedAtCommit publishes, when the current transaction (an
 * acceptor's) commits, that round has an accepted value here.  If it
 * cannot, the table is read again at the next question.
 */
void
PaxosNoteAcceptedAtCommit(const char *group_id, int64 round)
{
	GroupProgress *p = PendingFor(group_id);

	if (p != NULL)
		p->accepted = Max(p->accepted, round);
	else
		lost_accepted = true;
}

/*
 * PaxosNoteDecidedAtCommit publishes, when the current transaction commits,
 * that every round in [from, to] is decided here (it made them so, or saw
 * them so): if that joins the rounds known decided from the start of the
 * log, the learners need not look there again (PaxosDecidedThrough).
 * Only one range per group and transaction is kept: a range that does not
 * join or extend it is dropped, which only means a query later.
 */
void
PaxosNoteDecidedAtCommit(const char *group_id, int64 from, int64 to)
{
	GroupProgress *p = PendingFor(group_id);

	if (p == NULL || from > to)
		return;
	if (p->decided_from < 0 || (from <= p->decided_from && to >= p->decided_from - 1))
	{
		p->decided_to = p->decided_from < 0 ? to : Max(to, p->decided_to);
		p->decided_from = from;
	}
	else if (from >= p->decided_from && from <= p->decided_to + 1)
		p->decided_to = Max(to, p->decided_to);
}

/*
 * PaxosDecidedThrough is the round up to which every round of the group is
 * decided here, as committed transactions published it (-1: not known).
 */
int64
PaxosDecidedThrough(const char *group_id)
{
	GroupProgress g;

	return Published(group_id, &g) ? g.decided_through : -1;
}

/*
 * PendingFor finds or makes the current transaction's entry for a group;
 * NULL beyond a few groups in one transaction (waiters then fall back).
 */
static GroupProgress *
PendingFor(const char *group_id)
{
	int			i;

	for (i = 0; i < npending; i++)
		if (strcmp(pending[i].group_id, group_id) == 0)
			return &pending[i];
	if (npending == PENDING_MAX || strlen(group_id) >= PAXOS_GROUP_ID_MAX)
		return NULL;
	memset(&pending[npending], 0, sizeof(GroupProgress));
	strlcpy(pending[npending].group_id, group_id, PAXOS_GROUP_ID_MAX);
	pending[npending].applied = pending[npending].accepted = -1;
	pending[npending].certified = -1;
	pending[npending].decided_from = pending[npending].decided_to = -1;
	return &pending[npending++];
}

/* Published copies what is published for a group; false if nothing is. */
static bool
Published(const char *group_id, GroupProgress *copy)
{
	GroupProgress *g;

	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, false);
	if (g != NULL)
		*copy = *g;
	SpinLockRelease(&progress->mutex);
	return g != NULL;
}

/* FindProgress finds (or makes) a group's entry; the caller holds the mutex. */
static GroupProgress *
FindProgress(const char *group_id, bool create)
{
	int			i;

	for (i = 0; i < progress->ngroups; i++)
		if (strcmp(progress->groups[i].group_id, group_id) == 0)
			return &progress->groups[i];
	if (!create || progress->ngroups == PROGRESS_GROUPS)
		return NULL;
	memset(&progress->groups[progress->ngroups], 0, sizeof(GroupProgress));
	strlcpy(progress->groups[progress->ngroups].group_id, group_id, PAXOS_GROUP_ID_MAX);
	progress->groups[progress->ngroups].applied = -1;
	progress->groups[progress->ngroups].certified = -1;
	progress->groups[progress->ngroups].accepted = -1;
	progress->groups[progress->ngroups].decided_through = -1;
	return &progress->groups[progress->ngroups++];
}

/* PublishPending makes the committed progress known and wakes its waiters. */
static void
PublishPending(void)
{
	int			i;
	bool		applied = false;

	SpinLockAcquire(&progress->mutex);
	for (i = 0; i < npending; i++)
	{
		GroupProgress *g = FindProgress(pending[i].group_id, true);

		if (g != NULL)
		{
			applied |= pending[i].applied > g->applied;
			g->applied = Max(g->applied, pending[i].applied);
			g->certified = Max(g->certified, pending[i].certified);
			g->accepted = Max(g->accepted, pending[i].accepted);
			if (pending[i].decided_from >= 0 &&
				pending[i].decided_from <= g->decided_through + 1)
				g->decided_through = Max(g->decided_through, pending[i].decided_to);
		}
	}
	if (lost_accepted)
	{
		/* an acceptance could not be noted: read the tables again */
		for (i = 0; i < progress->ngroups; i++)
			progress->groups[i].accepted_known = false;
	}
	SpinLockRelease(&progress->mutex);

	/*
	 * Statements sleep here for applied rounds (and for answers, woken by
	 * whoever posts one): every acceptance or certification waking them
	 * all only made them look and sleep again.
	 */
	if (applied)
		ConditionVariableBroadcast(&progress->advanced);
}

static void
ProgressXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (npending > 0 || lost_accepted)
				PublishPending();
			if (wake_at_commit)
				PaxosWakeApplier();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	npending = 0;
	wake_at_commit = false;
	lost_accepted = false;
}

/* PaxosAppliedHere is the round published for a group (-1: none yet). */
int64
PaxosAppliedHere(const char *group_id)
{
	GroupProgress g;

	return Published(group_id, &g) ? g.applied : -1;
}

/*
 * PaxosWaitApplied waits up to timeout_ms until the group is applied up to
 * round here (as published at commit); true if it is.
 */
bool
PaxosWaitApplied(const char *group_id, int64 round, int timeout_ms)
{
	TimestampTz deadline;
	bool		reached;

	/* the usual case on a busy node: there already, nobody to wake */
	if (PaxosAppliedHere(group_id) >= round)
		return true;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	PaxosWakeApplier();
	ConditionVariablePrepareToSleep(&progress->advanced);
	for (;;)
	{
		long		left;

		reached = PaxosAppliedHere(group_id) >= round;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (reached || left <= 0)
			break;
		(void) ConditionVariableTimedSleep(&progress->advanced, left,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return reached;
}

/*
 * PaxosLocalMaxAccepted is this node's highest round with an accepted
 * value (at least the last compacted one), as paxos_max_accepted_round
 * answers: from shared memory once read from the round table since the
 * server started.  Reads the table with the latest snapshot, not the
 * caller's.  Caller is connected to SPI.
 */
int64
PaxosLocalMaxAccepted(const char *group_id)
{
	GroupProgress *g;
	int64		accepted = -1;
	bool		known = false;

	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, false);
	if (g != NULL && g->accepted_known)
	{
		accepted = g->accepted;
		known = true;
	}
	SpinLockRelease(&progress->mutex);
	if (known)
		return accepted;

	accepted = RoundStoreMaxRoundLatest(group_id);
	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, true);
	if (g != NULL)
	{
		g->accepted = Max(g->accepted, accepted);
		g->accepted_known = true;
		accepted = g->accepted;
	}
	SpinLockRelease(&progress->mutex);
	return accepted;
}

/*
 * PaxosSharedGroupRound is PaxosMaxGroupRound(group, true), asked once for
 * all the statements of this node that need it at the same time: a
 * statement may use the answer to any question sent after it arrived.  The
 * first to arrive asks; those arriving meanwhile wait for the next
 * question, which one of them sends for all.  A statement that waits too
 * long (the asker died) asks by itself.
 */
int64
PaxosSharedGroupRound(const char *group_id)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   2 * PaxosRpcTimeoutMs + 1000);
	GroupProgress *g;
	uint64		floor;
	uint64		mine = 0;
	volatile int64 answer = -1;
	volatile bool done = false;

	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, true);
	if (g == NULL)
	{
		SpinLockRelease(&progress->mutex);
		return PaxosMaxGroupRound(group_id, true);
	}
	floor = g->asked;
	SpinLockRelease(&progress->mutex);

	ConditionVariablePrepareToSleep(&progress->advanced);
	for (;;)
	{
		long		left;

		SpinLockAcquire(&progress->mutex);
		if (g->answered > floor)
		{
			answer = g->answer;
			done = true;
		}
		else if (!g->asking)
		{
			g->asking = true;
			mine = ++g->asked;
		}
		SpinLockRelease(&progress->mutex);
		if (done || mine > 0)
			break;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			break;
		(void) ConditionVariableTimedSleep(&progress->advanced, left, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (done)
		return answer;
	if (mine == 0)
		return PaxosMaxGroupRound(group_id, true);

	PG_TRY();
	{
		answer = PaxosMaxGroupRound(group_id, true);
		done = true;
	}
	PG_FINALLY();
	{
		/* a failed question answers nobody: the next waiter asks again */
		SpinLockAcquire(&progress->mutex);
		g->asking = false;
		if (done)
		{
			g->answered = mine;
			g->answer = Max(g->answer, answer);
			answer = g->answer;
		}
		SpinLockRelease(&progress->mutex);
		ConditionVariableBroadcast(&progress->advanced);
	}
	PG_END_TRY();
	return answer;
}

/*
 * PaxosNoteCopying says whether a snapshot copy of the group is taking its
 * tables now: a writer waiting for the copy gives way to it then.
 */
void
PaxosNoteCopying(const char *group_id, bool copying)
{
	GroupProgress *g;

	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, copying);
	if (g != NULL)
		g->copying = copying;
	SpinLockRelease(&progress->mutex);
}

/* PaxosCopying tells whether a snapshot copy of the group takes its tables. */
bool
PaxosCopying(const char *group_id)
{
	GroupProgress g;

	return Published(group_id, &g) && g.copying;
}

/*
 * PaxosForgetProgress drops what shared memory knows of a group that this
 * node creates, joins or leaves, whose rounds are written without the
 * acceptor: it is read again from the tables.
 */
void
PaxosForgetProgress(const char *group_id)
{
	GroupProgress *g;

	SpinLockAcquire(&progress->mutex);
	g = FindProgress(group_id, false);
	if (g != NULL)
	{
		g->applied = -1;
		g->certified = -1;
		g->accepted = -1;
		g->accepted_known = false;
		g->decided_through = -1;
	}
	SpinLockRelease(&progress->mutex);
}
