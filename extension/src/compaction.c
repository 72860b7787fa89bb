/*
 * compaction.c
 *    Log compaction: deleting the rounds of a group that every member has
 *    applied, keeping pg_paxos.log_retention rounds below that point.
 *
 * Who has applied what comes from the heartbeats (leader.c): every member
 * reports its applied round several times per leader timeout.  The horizon
 * is the lowest applied round of this node and of the members heard from
 * within pg_paxos.compaction_member_timeout.  A member silent for longer
 * (down, cut off) no longer holds the log back: when it comes back and
 * finds the rounds it needs gone, it copies a snapshot from a peer
 * (snapshot.c).  A member this node has not heard from since it started
 * heartbeating it holds compaction until that long has passed, so that a
 * node that just started does not compact past members it has simply not
 * reached yet.
 *
 * Rounds below the horizon lose their pgp_metadata.round and .outcome
 * rows, and the group's compacted_below moves to the horizon, in one
 * transaction.  From then on this node's acceptor refuses those rounds
 * (PaxosCheckNotCompacted): it no longer knows what it promised or
 * accepted there, so it must never take part in them again.  They were
 * chosen and applied everywhere, so no proposer needs them.  cert_key,
 * cancelled_txn and host are kept whole: certification and membership need
 * them, and they grow with keys and changes, not with rounds.
 *
 * Only groups that replicate tables are compacted: only they have
 * heartbeats, and a plain log is the application's to read.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* Most rounds deleted by one compaction, to keep its transaction short. */
#define COMPACT_BATCH 50000

int			PaxosLogRetention = 10000;
int			PaxosCompactionIntervalMs = 10000;
int			PaxosCompactionMemberTimeoutMs = 300000;

/* "group connstr" of the silent members already logged (this process). */
static List *silent_reported = NIL;

static bool MembersApplied(const char *group_id, List *members, const char *own,
						   int64 *min_applied, List **silent);
static void NoteSilent(const char *group_id, const char *connstr, bool silent,
					   int64 horizon);
static void DeleteBelow(const char *group_id, int64 horizon);

/*
 * MembersApplied lowers *min_applied to the applied round of every member
 * heard from within the member timeout, and lists in *silent the members
 * that stayed silent longer.  False when some member must hold compaction
 * back although it has not reported yet (see the file header).
 */
static bool
MembersApplied(const char *group_id, List *members, const char *own,
			   int64 *min_applied, List **silent)
{
	TimestampTz now = GetCurrentTimestamp();
	GroupView  *v;
	ListCell   *lc;
	bool		ok = true;

	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	foreach(lc, members)
	{
		const char *m = (const char *) lfirst(lc);
		PeerView   *p = NULL;
		int			i;

		if (strcmp(m, own) == 0)
			continue;
		for (i = 0; v != NULL && i < v->npeers; i++)
			if (strcmp(v->peers[i].connstr, m) == 0)
				p = &v->peers[i];
		if (p == NULL)
		{
			ok = false;			/* not even tried yet */
			break;
		}
		if (p->last_contact == 0 || p->applied < 0)
		{
			if (!TimestampDifferenceExceeds(p->since, now, PaxosCompactionMemberTimeoutMs))
			{
				ok = false;
				break;
			}
			*silent = lappend(*silent, pstrdup(m));
		}
		else if (TimestampDifferenceExceeds(p->last_contact, now, PaxosCompactionMemberTimeoutMs))
			*silent = lappend(*silent, pstrdup(m));
		else
			*min_applied = Min(*min_applied, p->applied);
	}
	PaxosLeaderUnlock();
	return ok;
}

/*
 * NoteSilent logs, once per absence, that compaction goes on without a
 * silent member, and that it is heard from again.
 */
static void
NoteSilent(const char *group_id, const char *connstr, bool silent, int64 horizon)
{
	char	   *key = psprintf("%s %s", group_id, connstr);
	ListCell   *lc;

	foreach(lc, silent_reported)
	{
		if (strcmp((char *) lfirst(lc), key) != 0)
			continue;
		if (!silent)
		{
			silent_reported = foreach_delete_current(silent_reported, lc);
			ereport(LOG,
					(errmsg("pg_paxos: group \"%s\": member %s is heard from again; compaction waits for it",
							group_id, PaxosConnstrForDisplay(connstr))));
		}
		return;
	}
	if (!silent)
		return;
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		silent_reported = lappend(silent_reported, pstrdup(key));
		MemoryContextSwitchTo(old);
	}
	ereport(LOG,
			(errmsg("pg_paxos: group \"%s\": log compaction no longer waits for member %s, not heard from for %d ms",
					group_id, PaxosConnstrForDisplay(connstr),
					PaxosCompactionMemberTimeoutMs),
			 errdetail("The log is kept from round " INT64_FORMAT " on, below what the other members applied; if that member needs older rounds when it comes back, it copies a snapshot of the group from a peer.",
					   horizon)));
}

/* DeleteBelow drops the rounds below horizon and records it, atomically. */
static void
DeleteBelow(const char *group_id, int64 horizon)
{
	static SPIPlanPtr plans[3];
	static const char *const sql[3] = {
		"DELETE FROM pgp_metadata.round WHERE group_id = $1 AND round_num < $2",
		"DELETE FROM pgp_metadata.outcome WHERE group_id = $1 AND round_num < $2",
		"UPDATE pgp_metadata.\"group\" SET compacted_below = $2"
		" WHERE group_id = $1 AND compacted_below < $2",
	};
	static const int expected[3] = {SPI_OK_DELETE, SPI_OK_DELETE, SPI_OK_UPDATE};
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	int			i;

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(horizon);
	for (i = 0; i < 3; i++)
		if (SPI_execute_plan(PaxosKeptPlan(&plans[i], sql[i], 2, types),
							 values, NULL, false, 0) != expected[i])
			elog(ERROR, "pg_paxos: could not compact group \"%s\"", group_id);
}

/*
 * PaxosCompactGroup deletes the rounds of a group below the horizon (see
 * the file header), in the current transaction; nothing when some member
 * holds it back or nothing is below it.
 */
void
PaxosCompactGroup(const char *group_id)
{
	GroupInfo	group;
	List	   *members;
	List	   *silent = NIL;
	int64		min_applied;
	int64		horizon;
	ListCell   *lc;
	bool		ok;

	SPI_connect();
	if (!GroupLoad(group_id, &group))
	{
		SPI_finish();
		return;
	}
	members = GroupHostsForRound(group_id, PG_INT64_MAX);
	min_applied = group.last_applied_round;
	ok = MembersApplied(group_id, members, group.own_connection_string,
						&min_applied, &silent);
	horizon = Min(min_applied + 1 - (int64) PaxosLogRetention,
				  group.compacted_below + COMPACT_BATCH);
	if (ok && horizon > group.compacted_below)
	{
		DeleteBelow(group_id, horizon);
		ereport(DEBUG1,
				(errmsg("pg_paxos: group \"%s\": log compacted below round " INT64_FORMAT,
						group_id, horizon)));
	}
	foreach(lc, members)
	{
		const char *m = (const char *) lfirst(lc);
		ListCell   *sc;
		bool		is_silent = false;

		foreach(sc, silent)
			is_silent = is_silent || strcmp((char *) lfirst(sc), m) == 0;
		if (ok && strcmp(m, group.own_connection_string) != 0)
			NoteSilent(group_id, m, is_silent, horizon);
	}
	SPI_finish();
}

/*
 * PaxosPeersCompactedBelow is the highest round below which some peer has
 * compacted its log, as its heartbeats said (0 if none did).
 */
int64
PaxosPeersCompactedBelow(const char *group_id)
{
	GroupView  *v;
	int64		result = 0;
	int			i;

	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	for (i = 0; v != NULL && i < v->npeers; i++)
		if (v->peers[i].last_contact != 0)
			result = Max(result, v->peers[i].compacted_below);
	PaxosLeaderUnlock();
	return result;
}
