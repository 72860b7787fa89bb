/*
 * peer_connection.c
 *    Cached libpq connections from this backend to the nodes of its groups.
 *
 * Like postgres_fdw's connection cache, a connection lives for the life of
 * the backend, keyed by connection string, and is reused by every Paxos call.
 * Unlike postgres_fdw's, remote work is never part of the local transaction:
 * an acceptor RPC commits on its own node before it answers, which is what
 * Paxos needs, so no transaction callbacks are involved.  What the cache
 * tracks instead is the state of each connection (connecting, idle, a query
 * in flight and which fanout call it belongs to), so that an answer that
 * arrives after its caller stopped waiting is recognised and dropped.
 *
 * Connection strings may carry passwords: they are never put in messages;
 * PaxosConnstrForDisplay gives the form that may be shown.
 */
#include "pg_paxos.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* Delay before reconnecting to a peer whose connection just failed. */
#define PEER_RETRY_DELAY_MS 200

/* Learn requests kept for a busy peer; beyond this it catches up by itself. */
#define PEER_MAX_DEFERRED 1024

static void FreeDeferred(PeerConnection *peer);

static PeerConnection **peers = NULL;
static int	npeers = 0;
static int	maxpeers = 0;

/* PeerAll lists this process's cached connections. */
PeerConnection **
PeerAll(int *n)
{
	*n = npeers;
	return peers;
}

/* PeerGet returns the cache entry for a connection string, creating it. */
PeerConnection *
PeerGet(const char *connstr)
{
	PeerConnection *peer;
	int			i;

	for (i = 0; i < npeers; i++)
		if (strcmp(peers[i]->connstr, connstr) == 0)
			return peers[i];

	if (npeers == maxpeers)
	{
		int			newmax = maxpeers == 0 ? 8 : maxpeers * 2;

		if (peers == NULL)
			peers = MemoryContextAlloc(TopMemoryContext,
									   newmax * sizeof(PeerConnection *));
		else
			peers = repalloc(peers, newmax * sizeof(PeerConnection *));
		maxpeers = newmax;
	}
	/* entries are allocated one by one, so pointers to them stay valid */
	peer = MemoryContextAllocZero(TopMemoryContext, sizeof(PeerConnection));
	peers[npeers++] = peer;
	peer->connstr = MemoryContextStrdup(TopMemoryContext, connstr);
	peer->display = MemoryContextStrdup(TopMemoryContext,
										PaxosConnstrForDisplay(connstr));
	peer->state = PEER_DISCONNECTED;
	return peer;
}

/*
 * PeerStartConnect begins a non-blocking connection attempt; false if it
 * failed at once (or the peer failed too recently to try again).
 */
bool
PeerStartConnect(PeerConnection *peer)
{
	/*
	 * The peer's backend runs only our short RPC queries: no JIT there.
	 * Each acceptor step reads what committed while it waited for its
	 * locks: READ COMMITTED, whatever the server's default isolation.
	 */
	const char *keys[] = {"application_name", "options", "dbname", NULL};
	const char *vals[] = {"pg_paxos",
		"-c jit=off -c default_transaction_isolation=read\\ committed",
	peer->connstr, NULL};

	Assert(peer->state == PEER_DISCONNECTED);
	if (GetCurrentTimestamp() < peer->retry_after)
		return false;

	peer->conn = PQconnectStartParams(keys, vals, 1);
	if (peer->conn == NULL || PQstatus(peer->conn) == CONNECTION_BAD)
	{
		PeerDisconnect(peer, peer->conn ? PQerrorMessage(peer->conn) : "out of memory");
		return false;
	}
	peer->state = PEER_CONNECTING;
	peer->poll = PGRES_POLLING_WRITING;
	peer->prepared = 0;
	return true;
}

/*
 * PeerDisconnect closes a connection after a failure and remembers why, to
 * report it; the next attempt waits a little so that a dead peer is not
 * hammered by every call.
 */
void
PeerDisconnect(PeerConnection *peer, const char *why)
{
	if (peer->last_error)
		pfree(peer->last_error);
	peer->last_error = MemoryContextStrdup(TopMemoryContext, PaxosTrimMessage(why));
	if (peer->result)
		PQclear(peer->result);
	peer->result = NULL;
	if (peer->conn)
		PQfinish(peer->conn);
	peer->conn = NULL;
	FreeDeferred(peer);
	peer->state = PEER_DISCONNECTED;
	peer->prepared = 0;
	peer->retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													PEER_RETRY_DELAY_MS);
}

/*
 * PeerDeferLearn keeps a learn request for a peer that was still busy with
 * an earlier query when the proposer returned; it is sent as soon as the
 * peer is idle, ahead of any new request, so learners stay in log order.
 */
void
PeerDeferLearn(PeerConnection *peer, const char *const *params)
{
	MemoryContext old;
	char	  **copy;
	int			i;

	if (peer->state == PEER_DISCONNECTED || list_length(peer->deferred) >= PEER_MAX_DEFERRED)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	copy = palloc(sizeof(char *) * 6);
	for (i = 0; i < 6; i++)
		copy[i] = params[i] ? pstrdup(params[i]) : NULL;
	peer->deferred = lappend(peer->deferred, copy);
	MemoryContextSwitchTo(old);
}

/*
 * PeerSendDeferred sends the oldest deferred learn request to an idle peer
 * (its answer belongs to no call and is dropped).  Returns true if it sent
 * something, leaving the peer busy.
 */
bool
PeerSendDeferred(PeerConnection *peer)
{
	char	  **params;
	int			ok;
	int			i;

	if (peer->state != PEER_IDLE || peer->deferred == NIL)
		return false;
	peer->owner = 0;
	peer->busy_since = GetCurrentTimestamp();
	peer->inflight_kind = RPC_CONFIRM;
	if ((peer->prepared & (1u << RPC_CONFIRM)) == 0)
	{
		ok = PQsendPrepare(peer->conn, PeerStatementName(RPC_CONFIRM),
						   PeerStatementSql(RPC_CONFIRM), 0, NULL);
		peer->state = PEER_PREPARING;
	}
	else
	{
		params = (char **) linitial(peer->deferred);
		peer->deferred = list_delete_first(peer->deferred);
		ok = PQsendQueryPrepared(peer->conn, PeerStatementName(RPC_CONFIRM), 6,
								 (const char *const *) params, NULL, NULL, 0);
		for (i = 0; i < 6; i++)
			if (params[i])
				pfree(params[i]);
		pfree(params);
		peer->state = PEER_BUSY;
	}
	if (!ok)
		PeerDisconnect(peer, PQerrorMessage(peer->conn));
	return true;
}

/* FreeDeferred drops the learn requests kept for a peer. */
static void
FreeDeferred(PeerConnection *peer)
{
	ListCell   *lc;

	foreach(lc, peer->deferred)
	{
		char	  **params = (char **) lfirst(lc);
		int			i;

		for (i = 0; i < 6; i++)
			if (params[i])
				pfree(params[i]);
		pfree(params);
	}
	list_free(peer->deferred);
	peer->deferred = NIL;
}

/* PeerStatementName is the name of an RPC's prepared statement on peers. */
const char *
PeerStatementName(RpcKind kind)
{
	static const char *const names[RPC_KIND_COUNT] = {
		"pg_paxos_prepare", "pg_paxos_accept", "pg_paxos_confirm",
		"pg_paxos_max_round", "pg_paxos_decided_rounds", "pg_paxos_identity",
		"pg_paxos_copy_decided", "pg_paxos_certify", "pg_paxos_apply_upto",
		"pg_paxos_submit", "pg_paxos_heartbeat", "pg_paxos_standing"
	};

	return names[kind];
}

/*
 * PeerStatementSql is the SQL of an RPC, qualified with the schema the
 * extension lives in (the same on every node).
 */
const char *
PeerStatementSql(RpcKind kind)
{
	static char *sql[RPC_KIND_COUNT];

	if (sql[kind] == NULL)
	{
		const char *s = kind == RPC_IDENTITY ? "" : PaxosExtensionSchema();
		char	   *text = NULL;

		switch (kind)
		{
			case RPC_PREPARE:
				text = psprintf("SELECT promised, proposer_id, min_proposal_num, value_id,"
								" value, accepted_proposal_num, accepted_proposer_id,"
								" consensus, max_round_num, config_round"
								" FROM %s.paxos_request_prepare($1, $2, $3::bigint, $4::bigint,"
								" $5::bigint, $6::bigint)", s);
				break;
			case RPC_ACCEPT:
				text = psprintf("SELECT accepted, min_proposal_num, proposer_id,"
								" consensus, value_id, value, accepted_proposal_num,"
								" accepted_proposer_id, next_promised, next_proposer_id,"
								" next_min_proposal_num, next_value_id, next_value,"
								" next_accepted_proposal_num, next_accepted_proposer_id,"
								" next_consensus, max_round_num, config_round"
								" FROM %s.paxos_request_accept($1, $2, $3::bigint,"
								" $4::bigint, $5, $6, $7::bigint, $8::bigint, $9::boolean)", s);
				break;
			case RPC_CONFIRM:
				text = psprintf("SELECT %s.paxos_confirm_consensus($1, $2, $3::bigint,"
								" $4::bigint, $5, $6)", s);
				break;
			case RPC_MAX_ROUND:
				text = psprintf("SELECT %s.paxos_max_accepted_round($1, $2::boolean)", s);
				break;
			case RPC_DECIDED_ROUNDS:
				text = psprintf("SELECT round_num, accepted_proposal_num, accepted_proposer_id,"
								" value_id, value FROM %s.paxos_decided_rounds($1,"
								" $2::bigint, $3::bigint)", s);
				break;
			case RPC_IDENTITY:
				text = psprintf("SELECT system_identifier::text || '/' ||"
								" current_setting('port') || '/' ||"
								" extract(epoch FROM pg_postmaster_start_time())::text"
								" FROM pg_control_system()");
				break;
			case RPC_COPY_DECIDED:
				text = psprintf("SELECT %s.paxos_copy_decided($1, $2::bigint, $3::bigint)", s);
				break;
			case RPC_CERTIFY:
				text = psprintf("SELECT %s.paxos_certify($1, $2::bigint)", s);
				break;
			case RPC_APPLY:
				text = psprintf("SELECT %s.paxos_apply_upto($1, $2::bigint, $3::boolean)", s);
				break;
			case RPC_SUBMIT:
				text = psprintf("SELECT round_num, entry_index, conflict_round, in_doubt, error"
								" FROM %s.paxos_submit($1, $2)", s);
				break;
			case RPC_HEARTBEAT:
				text = psprintf("SELECT node_id, leader_round, leader_node, leader_connection,"
								" decided_round, applied_round, compacted_below"
								" FROM %s.paxos_heartbeat($1, $2, $3, $4::bigint, $5, $6,"
								" $7::bigint, $8::bigint, $9::bigint)", s);
				break;
			case RPC_STANDING:
				text = psprintf("SELECT promised, proposer_id, min_proposal_num, value_id,"
								" value, accepted_proposal_num, accepted_proposer_id,"
								" consensus, max_round_num, config_round, standing"
								" FROM %s.paxos_request_standing_prepare($1, $2, $3::bigint,"
								" $4::bigint)", s);
				break;
			case RPC_KIND_COUNT:
				elog(ERROR, "pg_paxos: bad RPC kind");
		}
		sql[kind] = MemoryContextStrdup(TopMemoryContext, text);
		pfree(text);
	}
	return sql[kind];
}

/*
 * PaxosConnstrForDisplay returns a connection string with only the options
 * that say where it leads (service, host, port, database, user): never a
 * password.
 */
char *
PaxosConnstrForDisplay(const char *connstr)
{
	static const char *const shown[] = {"service", "host", "hostaddr", "port", "dbname", "user", NULL};
	PQconninfoOption *opts = PQconninfoParse(connstr, NULL);
	StringInfoData buf;
	PQconninfoOption *opt;

	if (opts == NULL)
		return pstrdup("(invalid connection string)");
	initStringInfo(&buf);
	for (opt = opts; opt->keyword != NULL; opt++)
	{
		int			i;

		if (opt->val == NULL || opt->val[0] == '\0')
			continue;
		for (i = 0; shown[i] != NULL; i++)
			if (strcmp(opt->keyword, shown[i]) == 0)
				appendStringInfo(&buf, "%s%s=%s", buf.len ? " " : "",
								 opt->keyword, opt->val);
	}
	PQconninfoFree(opts);
	return buf.data;
}
