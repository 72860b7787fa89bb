/*
 * leader_worker.c
 *    The pg_paxos leader worker: heartbeats with every peer of every group
 *    that replicates tables, and an election when the leader goes silent.
 *
 * Every pg_paxos.leader_timeout / 5 the worker sends each peer a heartbeat
 * (who it is, whom it follows, how far it is) and reads the answer (the
 * same about the peer); either direction keeps the leader alive here (see
 * leader.c).  When nothing was heard from the leader for
 * pg_paxos.leader_timeout, or no leader is known, the node stands for
 * election after a random delay of up to half that timeout (so that two
 * followers rarely stand at once): it appends a leader entry for itself.
 * Whichever leader entry comes last in the log wins, and heartbeats make
 * it known within one interval.  A node cut off from the majority stands
 * in vain: its append cannot be chosen.
 *
 * It has its own process so that applying a large round never delays a
 * heartbeat.
 */
#include "pg_paxos.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Groups are looked up again every this many heartbeats. */
#define REFRESH_EVERY 10

/* What the worker keeps about a group between heartbeats. */
typedef struct LeaderGroup
{
	char	   *group_id;
	char	   *own_connstr;
	List	   *peers;			/* connection strings, without this node */
	int64		decided;
	int64		applied;
	int64		compacted_below;
	bool		failing;		/* last election failed (for logging) */
} LeaderGroup;

typedef struct HeartbeatCollector
{
	LeaderGroup *group;
	PeerConnection **peers;
	bool	   *answered;
} HeartbeatCollector;

PGDLLEXPORT void PaxosLeaderWorkerMain(Datum arg);

static List *LoadGroups(MemoryContext context);
static void Heartbeat(LeaderGroup *lg);
static bool OnHeartbeat(void *arg, int host, PGresult *res, const char *error);
static void MaybeStand(LeaderGroup *lg);

/*
 * LoadGroups reads the groups that replicate tables, their members and how
 * far this node is; a group seen for the first time gets the newest leader
 * entry of its log.  In a transaction of its own.
 */
static List *
LoadGroups(MemoryContext context)
{
	List	   *result = NIL;
	uint64		i;
	int			n;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!OidIsValid(get_extension_oid("pg_paxos", true)))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return NIL;
	}
	SPI_connect();
	if (SPI_execute("SELECT g.group_id, g.own_connection_string, g.last_applied_round,"
					" greatest((SELECT max(r.round_num) FROM pgp_metadata.round r"
					"  WHERE r.group_id = g.group_id AND r.consensus), g.compacted_below - 1),"
					" (SELECT r.round_num || ' ' || r.value FROM pgp_metadata.round r"
					"  WHERE r.group_id = g.group_id AND r.consensus"
					"  AND r.value_id LIKE 'pg_paxos:leader:%'"
					"  ORDER BY r.round_num DESC LIMIT 1),"
					" g.compacted_below"
					" FROM pgp_metadata.\"group\" g"
					" WHERE EXISTS (SELECT 1 FROM pgp_metadata.replicated_tables t"
					"  WHERE t.group_id = g.group_id)",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not list the groups");
	n = (int) SPI_processed;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(context);
		LeaderGroup *lg = palloc0(sizeof(LeaderGroup));
		char	   *decided = SPI_getvalue(tup, desc, 4);
		char	   *leader = SPI_getvalue(tup, desc, 5);

		lg->group_id = pstrdup(SPI_getvalue(tup, desc, 1));
		lg->own_connstr = pstrdup(SPI_getvalue(tup, desc, 2));
		lg->applied = strtoi64(SPI_getvalue(tup, desc, 3), NULL, 10);
		lg->decided = decided ? strtoi64(decided, NULL, 10) : -1;
		lg->compacted_below = strtoi64(SPI_getvalue(tup, desc, 6), NULL, 10);
		result = lappend(result, lg);
		MemoryContextSwitchTo(old);

		PaxosLeaderLock(true);
		{
			GroupView  *v = PaxosGroupView(lg->group_id, true);

			if (v != NULL)
			{
				strlcpy(v->own_connstr, lg->own_connstr, PAXOS_CONNSTR_MAX);
				v->decided = lg->decided;
				v->applied = lg->applied;
				v->compacted_below = lg->compacted_below;
			}
		}
		PaxosLeaderUnlock();
		if (leader != NULL)
		{
			char	   *space = strchr(leader, ' ');

			if (space != NULL)
				PaxosLeaderFromLog(lg->group_id, strtoi64(leader, NULL, 10), space + 1);
		}
	}
	for (i = 0; i < (uint64) n; i++)
	{
		LeaderGroup *lg = list_nth(result, (int) i);
		List	   *hosts = GroupHostsForRound(lg->group_id, Max(lg->decided, 0) + 1);
		ListCell   *lc;

		foreach(lc, hosts)
		{
			char	   *h = (char *) lfirst(lc);

			if (strcmp(h, lg->own_connstr) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(context);

				lg->peers = lappend(lg->peers, pstrdup(h));
				MemoryContextSwitchTo(old);
			}
		}
		PaxosKeepPeers(lg->group_id, lg->peers);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

/* OnHeartbeat reads a peer's answer: who it is, whom it follows. */
static bool
OnHeartbeat(void *arg, int host, PGresult *res, const char *error)
{
	HeartbeatCollector *hc = (HeartbeatCollector *) arg;
	const char *connstr = hc->peers[host]->connstr;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	hc->answered[host] = true;
	if (!PQgetisnull(res, 0, 2) && !PQgetisnull(res, 0, 3))
		PaxosAdoptLeader(hc->group->group_id, strtoi64(PQgetvalue(res, 0, 1), NULL, 10),
						 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
						 psprintf("heard from node %s", PQgetvalue(res, 0, 0)));
	/* an answer keeps the leader only if it says it leads (with a majority) */
	PaxosNotePeer(hc->group->group_id, connstr, PQgetvalue(res, 0, 0),
				  strtoi64(PQgetvalue(res, 0, 4), NULL, 10),
				  strtoi64(PQgetvalue(res, 0, 5), NULL, 10),
				  strtoi64(PQgetvalue(res, 0, 6), NULL, 10),
				  !PQgetisnull(res, 0, 3) && strcmp(PQgetvalue(res, 0, 3), connstr) == 0);
	return false;
}

/*
 * NoteQuorumChange logs when this node, leading, stops or starts again
 * being answered by a majority (lock held).  While it is not, its
 * heartbeat answers name no leader.
 */
static void
NoteQuorumChange(LeaderGroup *lg, GroupView *v, int answering, int members,
				 TimestampTz now)
{
	bool		leading = PaxosViewLeadsHere(v);
	bool		answered = !TimestampDifferenceExceeds(v->quorum_at, now, PaxosLeaderTimeoutMs);

	if (leading && !v->quorum_lost && !answered)
		ereport(LOG,
				(errmsg("pg_paxos leader: group \"%s\": only %d of %d members answered this leader's heartbeats in the last %d ms",
						lg->group_id, answering, members, PaxosLeaderTimeoutMs),
				 errdetail("Until a majority answers again, this node tells its peers that it knows no leader, so that they can elect one.")));
	else if (leading && v->quorum_lost && answered)
		ereport(LOG,
				(errmsg("pg_paxos leader: group \"%s\": a majority answers this leader's heartbeats again",
						lg->group_id)));
	v->quorum_lost = leading && !answered;
}

/* Heartbeat exchanges heartbeats with every peer of a group. */
static void
Heartbeat(LeaderGroup *lg)
{
	int			npeers;
	PeerConnection **peers;
	HeartbeatCollector hc;
	FanoutStats stats;
	PaxosLeaderInfo leader;
	const char *params[9];
	char		leader_round[32];
	char		decided[32];
	char		applied[32];
	char		compacted[32];
	int			i;

	if (lg->peers == NIL)
		return;
	peers = PaxosPeersFor(lg->peers, &npeers);
	(void) PaxosKnownLeader(lg->group_id, &leader);
	PaxosLeaderLock(false);
	{
		GroupView  *v = PaxosGroupView(lg->group_id, false);

		snprintf(leader_round, sizeof(leader_round), INT64_FORMAT, v ? v->leader_round : -1);
		if (v != NULL && v->leader_round >= 0)
		{
			params[4] = pstrdup(v->leader_node);
			params[5] = pstrdup(v->leader_conn);
		}
		else
			params[4] = params[5] = NULL;
	}
	PaxosLeaderUnlock();
	snprintf(decided, sizeof(decided), INT64_FORMAT, lg->decided);
	snprintf(applied, sizeof(applied), INT64_FORMAT, lg->applied);
	snprintf(compacted, sizeof(compacted), INT64_FORMAT, lg->compacted_below);
	params[0] = lg->group_id;
	params[1] = PaxosOwnNodeId();
	params[2] = lg->own_connstr;
	params[3] = leader_round;
	params[6] = decided;
	params[7] = applied;
	params[8] = compacted;

	hc.group = lg;
	hc.peers = peers;
	hc.answered = palloc0(sizeof(bool) * npeers);
	FanoutCall(peers, npeers, RPC_HEARTBEAT, params, 9,
			   Max(PaxosHeartbeatIntervalMs, 20), OnHeartbeat, &hc, &stats);

	/*
	 * Who did not answer is unreachable for now.  Answers to this node's
	 * own calls are what its proposals get too: while a majority (this
	 * node included) answered within the leader timeout, it can lead.  An
	 * answer that came after this call stopped waiting (read by this call
	 * or an earlier one) counts as well: a peer slow under load is still
	 * reached.
	 */
	PaxosLeaderLock(true);
	{
		GroupView  *v = PaxosGroupView(lg->group_id, false);
		TimestampTz now = GetCurrentTimestamp();
		int			answering = 1;

		for (i = 0; v != NULL && i < npeers; i++)
		{
			PeerView   *p = PaxosFindPeer(v, peers[i]->connstr);

			if (p == NULL)
				continue;
			if (!hc.answered[i])
				p->reachable = false;
			p->answered_at = Max(p->answered_at, peers[i]->answered_at);
			if (!TimestampDifferenceExceeds(p->answered_at, now, PaxosLeaderTimeoutMs))
				answering++;
		}
		if (v != NULL && answering >= (npeers + 1) / 2 + 1)
			v->quorum_at = now;
		if (v != NULL)
			NoteQuorumChange(lg, v, answering, npeers + 1, now);
	}
	PaxosLeaderUnlock();
}

/*
 * MaybeStand starts an election when the leader went silent (see the file
 * header): first a random delay, then, if still silent, a leader entry.
 */
static void
MaybeStand(LeaderGroup *lg)
{
	PaxosLeaderInfo leader;
	TimestampTz now = GetCurrentTimestamp();
	bool		stand = false;
	char	   *why = NULL;

	if (PaxosKnownLeader(lg->group_id, &leader))
	{
		PaxosLeaderLock(true);
		{
			GroupView  *v = PaxosGroupView(lg->group_id, false);

			if (v != NULL)
				v->candidate = false;
		}
		PaxosLeaderUnlock();
		return;
	}

	PaxosLeaderLock(true);
	{
		GroupView  *v = PaxosGroupView(lg->group_id, false);

		if (v != NULL && !v->candidate)
		{
			v->candidate = true;
			v->stand_at = TimestampTzPlusMilliseconds(now,
													  (int) pg_prng_uint64_range(&pg_global_prng_state, 0,
																				 PaxosLeaderTimeoutMs / 2));
		}
		else if (v != NULL && now >= v->stand_at)
			stand = true;
	}
	PaxosLeaderUnlock();
	if (!stand)
		return;

	why = leader.round < 0
		? pstrdup("no leader known")
		: psprintf("nothing heard from the leader, node %s, for %d ms",
				   leader.node_id, PaxosLeaderTimeoutMs);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		/* an election that cannot win soon should not hold up heartbeats */
		int			save_timeout = PaxosTimeoutMs;

		PaxosTimeoutMs = Max(4 * PaxosLeaderTimeoutMs, 200);
		PG_TRY();
		{
			(void) PaxosStandForLeader(lg->group_id, why);
		}
		PG_FINALLY();
		{
			PaxosTimeoutMs = save_timeout;
		}
		PG_END_TRY();
		PopActiveSnapshot();
		CommitTransactionCommand();
		lg->failing = false;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		if (!lg->failing)
			ereport(LOG,
					(errmsg("pg_paxos leader: group \"%s\": election failed: %s",
							lg->group_id, edata->message)));
		FreeErrorData(edata);
		lg->failing = true;
		PaxosLeaderLock(true);
		{
			GroupView  *v = PaxosGroupView(lg->group_id, false);

			if (v != NULL)
				v->candidate = false;	/* stand again after a new delay */
		}
		PaxosLeaderUnlock();
	}
	PG_END_TRY();
}

/*
 * PaxosLeaderWorkerMain: connect, then heartbeat and watch the leader
 * until the server shuts down.
 */
void
PaxosLeaderWorkerMain(Datum arg)
{
	MemoryContext groups_context;
	MemoryContext tick_context;
	List	   *volatile groups = NIL;
	volatile uint64 tick = 0;

	PaxosWorkerConnect("pg_paxos leader");
	groups_context = AllocSetContextCreate(TopMemoryContext, "pg_paxos leader groups",
										   ALLOCSET_DEFAULT_SIZES);
	tick_context = AllocSetContextCreate(TopMemoryContext, "pg_paxos leader tick",
										 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		PaxosHeartbeatIntervalMs = Max(PaxosLeaderTimeoutMs / 5, 10);
		if (tick++ % REFRESH_EVERY == 0 || groups == NIL)
		{
			PG_TRY();
			{
				MemoryContextReset(groups_context);
				groups = NIL;
				groups = LoadGroups(groups_context);
			}
			PG_CATCH();
			{
				EmitErrorReport();
				FlushErrorState();
				AbortCurrentTransaction();
				MemoryContextReset(groups_context);
				groups = NIL;
			}
			PG_END_TRY();
		}

		MemoryContextSwitchTo(tick_context);
		pgstat_report_activity(STATE_RUNNING, "heartbeat");
		foreach(lc, groups)
		{
			LeaderGroup *lg = (LeaderGroup *) lfirst(lc);

			/* a transaction, for the catalog lookups of the RPC layer */
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PG_TRY();
			{
				Heartbeat(lg);
				CommitTransactionCommand();
			}
			PG_CATCH();
			{
				EmitErrorReport();
				FlushErrorState();
				AbortCurrentTransaction();
			}
			PG_END_TRY();
			MemoryContextSwitchTo(tick_context);
			MaybeStand(lg);
			MemoryContextSwitchTo(tick_context);
		}
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(tick_context);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 PaxosHeartbeatIntervalMs, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
