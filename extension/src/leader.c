/*
 * leader.c
 *    Who leads each group, as this node knows it, in shared memory; the
 *    heartbeats that spread it; the status view and switchover.
 *
 * A node becomes leader by appending a leader entry to the group's log
 * (leader_worker.c); the entry's round orders leaderships: a higher round
 * is a newer leader.  Every node adopts a newer leader as soon as it hears
 * of one: from certifying the entry, or from a heartbeat (every node's
 * leader worker exchanges heartbeats with every peer, carrying what each
 * knows).  Leadership only decides where entries are batched: every round
 * is still chosen by Paxos, so two nodes that both think they lead cost
 * speed, never safety.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(paxos_heartbeat);
PG_FUNCTION_INFO_V1(paxos_node_status);
PG_FUNCTION_INFO_V1(paxos_peer_status);
PG_FUNCTION_INFO_V1(paxos_become_leader);
PG_FUNCTION_INFO_V1(paxos_switchover);

#define PAXOS_SHARED_GROUPS lengthof(((LeaderShared *) NULL)->groups)

int			PaxosLeaderTimeoutMs = 500;
int			PaxosHeartbeatIntervalMs = 100;

static LeaderShared *leader_shared = NULL;

/* PaxosOwnNodeId names this node in ids and status (pg_paxos.node_id). */
const char *
PaxosOwnNodeId(void)
{
	return PaxosNodeId != NULL && PaxosNodeId[0] != '\0' ? PaxosNodeId : "node";
}

Size
PaxosLeaderShmemSize(void)
{
	return MAXALIGN(sizeof(LeaderShared));
}

/* PaxosLeaderShmemInit creates or attaches to the views (shmem startup). */
void
PaxosLeaderShmemInit(void)
{
	bool		found;

	leader_shared = ShmemInitStruct("pg_paxos leaders", PaxosLeaderShmemSize(), &found);
	if (!found)
	{
		memset(leader_shared, 0, sizeof(LeaderShared));
		leader_shared->lock = &(GetNamedLWLockTranche("pg_paxos"))[1].lock;
	}
}

/*
 * PaxosGroupView finds (or, with create, makes) a group's view; the caller
 * holds the lock (exclusively to create).  NULL if absent or no room.
 */
GroupView *
PaxosGroupView(const char *group_id, bool create)
{
	int			i;
	GroupView  *free_view = NULL;

	for (i = 0; i < PAXOS_SHARED_GROUPS; i++)
	{
		GroupView  *v = &leader_shared->groups[i];

		if (v->in_use && strcmp(v->group_id, group_id) == 0)
			return v;
		if (!v->in_use && free_view == NULL)
			free_view = v;
	}
	if (!create || free_view == NULL || strlen(group_id) >= PAXOS_GROUP_ID_MAX)
		return NULL;
	memset(free_view, 0, sizeof(GroupView));
	free_view->in_use = true;
	strlcpy(free_view->group_id, group_id, PAXOS_GROUP_ID_MAX);
	free_view->leader_round = -1;
	free_view->decided = free_view->applied = -1;
	free_view->compacted_below = 0;
	return free_view;
}

/* PaxosLeaderLock / PaxosLeaderUnlock guard the views. */
void
PaxosLeaderLock(bool exclusive)
{
	LWLockAcquire(leader_shared->lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
}

void
PaxosLeaderUnlock(void)
{
	LWLockRelease(leader_shared->lock);
}

/*
 * PaxosKnownLeader says who leads a group, if anyone is known and either
 * this node or heard from within pg_paxos.leader_timeout (a silent leader
 * is no use to forward to).
 */
bool
PaxosKnownLeader(const char *group_id, PaxosLeaderInfo *info)
{
	GroupView  *v;
	bool		known = false;
	TimestampTz now = GetCurrentTimestamp();

	memset(info, 0, sizeof(*info));
	info->round = -1;
	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	if (v != NULL && v->leader_round >= 0 && v->own_connstr[0] != '\0')
	{
		info->round = v->leader_round;
		strlcpy(info->node_id, v->leader_node, sizeof(info->node_id));
		strlcpy(info->connstr, v->leader_conn, sizeof(info->connstr));
		info->is_self = strcmp(v->leader_conn, v->own_connstr) == 0;
		known = info->is_self ||
			!TimestampDifferenceExceeds(v->leader_contact, now, PaxosLeaderTimeoutMs);
	}
	PaxosLeaderUnlock();
	return known;
}

/*
 * PaxosAdoptLeader records a leader if it is newer (a higher round) than
 * the one known; logs the change with its reason.
 */
void
PaxosAdoptLeader(const char *group_id, int64 round, const char *node_id,
				 const char *connstr, const char *why)
{
	GroupView  *v;
	bool		changed = false;
	bool		self = false;

	PaxosLeaderLock(true);
	v = PaxosGroupView(group_id, true);
	if (v != NULL && round > v->leader_round)
	{
		v->leader_round = round;
		strlcpy(v->leader_node, node_id, PAXOS_NODE_ID_MAX);
		strlcpy(v->leader_conn, connstr, PAXOS_CONNSTR_MAX);
		v->leader_contact = GetCurrentTimestamp();
		v->quorum_at = v->leader_contact;	/* a majority just chose it */
		v->candidate = false;
		v->leader_changes++;
		self = v->own_connstr[0] != '\0' && strcmp(connstr, v->own_connstr) == 0;
		changed = true;
	}
	PaxosLeaderUnlock();
	if (changed)
		ereport(LOG,
				(errmsg("pg_paxos: group \"%s\": %s leads now (round " INT64_FORMAT ")",
						group_id, self ? "this node" : psprintf("node %s", node_id),
						round),
				 errdetail_internal("%s", why)));
}

/* PaxosLeaderValue is the log value of a leader entry for this node. */
char *
PaxosLeaderValue(const char *connstr)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"node\":");
	escape_json(&buf, PaxosOwnNodeId());
	appendStringInfoString(&buf, ",\"conn\":");
	escape_json(&buf, connstr);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * PaxosLeaderFromLog adopts the leader of a leader entry met in log order
 * (certification); value is PaxosLeaderValue's.
 */
void
PaxosLeaderFromLog(const char *group_id, int64 round, const char *value)
{
	Datum		j = DirectFunctionCall1(jsonb_in, CStringGetDatum(value));
	Jsonb	   *jb = DatumGetJsonbP(j);
	JsonbValue	k;
	JsonbValue *node;
	JsonbValue *conn;

	k.type = jbvString;
	k.val.string.val = "node";
	k.val.string.len = 4;
	node = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	k.val.string.val = "conn";
	conn = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	if (node == NULL || conn == NULL || node->type != jbvString || conn->type != jbvString)
		return;
	PaxosAdoptLeader(group_id, round,
					 pnstrdup(node->val.string.val, node->val.string.len),
					 pnstrdup(conn->val.string.val, conn->val.string.len),
					 "a leader entry in the log");
}

/* FindPeer finds or adds a peer of a view (lock held exclusively). */
PeerView *
PaxosFindPeer(GroupView *v, const char *connstr)
{
	int			i;

	for (i = 0; i < v->npeers; i++)
		if (strcmp(v->peers[i].connstr, connstr) == 0)
			return &v->peers[i];
	if (v->npeers == PX_MAX_HOSTS || strlen(connstr) >= PAXOS_CONNSTR_MAX)
		return NULL;
	memset(&v->peers[v->npeers], 0, sizeof(PeerView));
	strlcpy(v->peers[v->npeers].connstr, connstr, PAXOS_CONNSTR_MAX);
	v->peers[v->npeers].decided = v->peers[v->npeers].applied = -1;
	v->peers[v->npeers].since = GetCurrentTimestamp();
	return &v->peers[v->npeers++];
}

/*
 * PaxosKeepPeers drops the peers of a group's view that are no longer
 * among its members (connstrs): a member removed is no peer to report,
 * and its place is free for another.
 */
void
PaxosKeepPeers(const char *group_id, List *connstrs)
{
	GroupView  *v;
	int			i;
	int			kept = 0;

	PaxosLeaderLock(true);
	v = PaxosGroupView(group_id, false);
	for (i = 0; v != NULL && i < v->npeers; i++)
	{
		ListCell   *lc;

		foreach(lc, connstrs)
		{
			if (strcmp(v->peers[i].connstr, (char *) lfirst(lc)) == 0)
			{
				if (kept != i)
					v->peers[kept] = v->peers[i];
				kept++;
				break;
			}
		}
	}
	if (v != NULL)
		v->npeers = kept;
	PaxosLeaderUnlock();
}

/*
 * PaxosNotePeer records that a peer was heard from, with what it said.
 * Hearing from the leader keeps it leader here only if the contact says it
 * can lead (vouches_leader): it reached this node by itself (its
 * heartbeat), or it answered this node's heartbeat saying it leads with a
 * majority answering it.  A leader this node reaches but that reaches
 * nobody (a one-way partition) must not be followed for ever.
 */
void
PaxosNotePeer(const char *group_id, const char *connstr, const char *node_id,
			  int64 decided, int64 applied, int64 compacted_below, bool vouches_leader)
{
	GroupView  *v;
	PeerView   *p;
	TimestampTz now = GetCurrentTimestamp();

	PaxosLeaderLock(true);
	v = PaxosGroupView(group_id, true);
	if (v != NULL && (p = PaxosFindPeer(v, connstr)) != NULL)
	{
		p->reachable = true;
		p->last_contact = now;
		strlcpy(p->node_id, node_id, PAXOS_NODE_ID_MAX);
		p->decided = decided;
		p->applied = applied;
		p->compacted_below = compacted_below;
		if (vouches_leader && v->leader_round >= 0 && strcmp(v->leader_conn, connstr) == 0)
			v->leader_contact = now;
	}
	PaxosLeaderUnlock();
}

/*
 * paxos_heartbeat (RPC between leader workers): the sender says who it is,
 * what it knows of the leader, how far it is and where its log starts; the
 * answer is the same about this node.
 */
Datum
paxos_heartbeat(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	char	   *node_id = PaxosTextArg(fcinfo, 1, "sender_node_id");
	char	   *connstr = PaxosTextArg(fcinfo, 2, "sender_connection_string");
	int64		leader_round = PaxosInt64Arg(fcinfo, 3, "leader_round");
	char	   *leader_node = PaxosTextArgOrNull(fcinfo, 4);
	char	   *leader_conn = PaxosTextArgOrNull(fcinfo, 5);
	int64		decided = PaxosInt64Arg(fcinfo, 6, "decided_round");
	int64		applied = PaxosInt64Arg(fcinfo, 7, "applied_round");
	int64		compacted_below = PaxosInt64Arg(fcinfo, 8, "compacted_below");
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	GroupView  *v;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_paxos: paxos_heartbeat must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	if (leader_round >= 0 && leader_node != NULL && leader_conn != NULL)
		PaxosAdoptLeader(group_id, leader_round, leader_node, leader_conn,
						 psprintf("heard from node %s", node_id));
	PaxosNotePeer(group_id, connstr, node_id, decided, applied, compacted_below, true);

	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	values[0] = CStringGetTextDatum(PaxosOwnNodeId());
	values[1] = Int64GetDatum(v ? v->leader_round : -1);
	if (v != NULL && PaxosViewLeadsHere(v) &&
		TimestampDifferenceExceeds(v->quorum_at, GetCurrentTimestamp(), PaxosLeaderTimeoutMs))
	{
		/* leading here, but no majority answers: say no leader is known */
		values[1] = Int64GetDatum(-1);
		nulls[2] = nulls[3] = true;
	}
	else if (v != NULL && v->leader_round >= 0)
	{
		values[2] = CStringGetTextDatum(v->leader_node);
		values[3] = CStringGetTextDatum(v->leader_conn);
	}
	else
		nulls[2] = nulls[3] = true;
	values[4] = Int64GetDatum(v ? v->decided : -1);
	values[5] = Int64GetDatum(v ? v->applied : -1);
	values[6] = Int64GetDatum(v ? v->compacted_below : 0);
	PaxosLeaderUnlock();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* PaxosViewLeadsHere: the view names this node as the leader (lock held). */
bool
PaxosViewLeadsHere(const GroupView *v)
{
	return v->leader_round >= 0 && strcmp(v->leader_conn, v->own_connstr) == 0;
}

/* Role of this node in a group, from its view (lock held). */
static const char *
RoleOf(GroupView *v, TimestampTz now)
{
	if (PaxosViewLeadsHere(v))
		return "leader";
	if (v->leader_round >= 0 &&
		!TimestampDifferenceExceeds(v->leader_contact, now, PaxosLeaderTimeoutMs))
		return "follower";
	return "candidate";
}

/*
 * paxos_node_status: per group of this node, its role, the leader it
 * knows, the leader's ballot (the round of its leader entry), and how far
 * this node has decided and applied the log.
 */
Datum
paxos_node_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	PaxosLeaderLock(false);
	for (i = 0; i < PAXOS_SHARED_GROUPS; i++)
	{
		GroupView  *v = &leader_shared->groups[i];
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		if (!v->in_use || v->own_connstr[0] == '\0')
			continue;
		values[0] = CStringGetTextDatum(PaxosOwnNodeId());
		values[1] = CStringGetTextDatum(v->group_id);
		values[2] = CStringGetTextDatum(RoleOf(v, now));
		values[3] = CStringGetTextDatum(v->leader_node);
		nulls[3] = v->leader_round < 0;
		values[4] = Int64GetDatum(v->leader_round);
		nulls[4] = v->leader_round < 0;
		values[5] = Int64GetDatum(v->decided);
		values[6] = Int64GetDatum(v->applied);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PaxosLeaderUnlock();
	return (Datum) 0;
}

/*
 * paxos_peer_status: per group and peer, whether the peer answered the
 * last heartbeat, when it was last heard from, and how many rounds it has
 * yet to apply of the highest round decided anywhere (as far as known).
 */
Datum
paxos_peer_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	int			i;
	int			j;

	InitMaterializedSRF(fcinfo, 0);
	PaxosLeaderLock(false);
	for (i = 0; i < PAXOS_SHARED_GROUPS; i++)
	{
		GroupView  *v = &leader_shared->groups[i];
		int64		top;

		if (!v->in_use)
			continue;
		top = v->decided;
		for (j = 0; j < v->npeers; j++)
			top = Max(top, v->peers[j].decided);
		for (j = 0; j < v->npeers; j++)
		{
			PeerView   *p = &v->peers[j];
			Datum		values[7];
			bool		nulls[7] = {false, false, false, false, false, false, false};

			values[0] = CStringGetTextDatum(v->group_id);
			values[1] = CStringGetTextDatum(p->node_id);
			nulls[1] = p->node_id[0] == '\0';
			values[2] = CStringGetTextDatum(PaxosConnstrForDisplay(p->connstr));
			values[3] = BoolGetDatum(p->reachable &&
									 !TimestampDifferenceExceeds(p->last_contact, now,
																 PaxosLeaderTimeoutMs));
			values[4] = TimestampTzGetDatum(p->last_contact);
			nulls[4] = p->last_contact == 0;
			values[5] = Int64GetDatum(Max(0, top - p->applied));
			nulls[5] = p->applied < 0 && p->last_contact == 0;
			values[6] = BoolGetDatum(v->leader_round >= 0 &&
									 strcmp(v->leader_conn, p->connstr) == 0);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PaxosLeaderUnlock();
	return (Datum) 0;
}

/*
 * PaxosStandForLeader appends a leader entry for this node and adopts it;
 * returns its round.  Safe at any time: it is an ordinary append.
 */
int64
PaxosStandForLeader(const char *group_id, const char *why)
{
	GroupInfo	group;
	char	   *value_id;
	int64		round;
	char	   *own;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	own = MemoryContextStrdup(TopTransactionContext, group.own_connection_string);
	SPI_finish();
	value_id = psprintf(PAXOS_LEADER_PREFIX "%s/%016llx", PaxosOwnNodeId(),
						(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	round = PaxosAppendAlone(group_id, value_id, PaxosLeaderValue(own));
	PaxosAdoptLeader(group_id, round, PaxosOwnNodeId(), own, why);
	return round;
}

/* paxos_become_leader (RPC for switchover): this node takes the lead. */
Datum
paxos_become_leader(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");

	PG_RETURN_INT64(PaxosStandForLeader(group_id, "switchover requested"));
}

/*
 * paxos_switchover moves the leadership of a group to the node named
 * target_node_id (this one or a peer it has heard from); returns the round
 * of the new leader entry.
 */
Datum
paxos_switchover(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	char	   *target = PaxosTextArg(fcinfo, 1, "target_node_id");
	char	   *connstr = NULL;
	GroupView  *v;
	int			i;
	PGconn	   *conn;
	PGresult   *res;
	int64		round;

	if (strcmp(target, PaxosOwnNodeId()) == 0)
		PG_RETURN_INT64(PaxosStandForLeader(group_id, "switchover requested"));

	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	for (i = 0; v != NULL && i < v->npeers; i++)
		if (strcmp(v->peers[i].node_id, target) == 0)
			connstr = pstrdup(v->peers[i].connstr);
	PaxosLeaderUnlock();
	if (connstr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no node \"%s\" is known in paxos group \"%s\"", target, group_id),
				 errhint("SELECT * FROM paxos_peer_status() lists the nodes this one has heard from.")));

	conn = PaxosConnectOrError(connstr,
							   psprintf("could not reach node \"%s\" (%s)", target,
										PaxosConnstrForDisplay(connstr)),
							   "Check that the node runs; paxos_peer_status() shows whether it answers heartbeats.");
	PG_TRY();
	{
		res = PaxosRemoteQuery(conn, psprintf("SELECT %s.paxos_become_leader($1)",
											  PaxosExtensionSchema()),
							   group_id, PaxosConnstrForDisplay(connstr));
	}
	PG_CATCH();
	{
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	round = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	PaxosAdoptLeader(group_id, round, target, connstr, "switchover");
	PG_RETURN_INT64(round);
}
