/*
 * fanout.c
 *    Send one RPC to many peers at once and collect their answers in a
 *    single poll loop, with one deadline for all of them.
 *
 * Every peer progresses on its own: connect if needed, prepare the RPC's
 * statement once per connection, send, read the answer.  Answers are handed
 * to the caller as they arrive, and the caller says when it has heard
 * enough (a quorum), so one slow or dead peer never delays a decision that a
 * majority can make.  A query still in flight when the caller stops waiting
 * keeps its connection busy; its answer is read and dropped by a later call
 * (it carries the id of the call that sent it), which then sends its own.
 *
 * The loop waits on the latch too, so query cancel and statement_timeout
 * interrupt it; the wait set is freed before interrupts are processed.
 */
#include "pg_paxos.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/*
 * A peer that answers nothing for this many call timeouts, and at least
 * STUCK_MIN_MS, is reconnected.  The floor keeps short calls (heartbeats)
 * from tearing down a connection to a peer that is only slow under load:
 * a new connection costs it a fresh backend, slower still to answer.
 */
#define STUCK_TIMEOUTS 3
#define STUCK_MIN_MS 1000

typedef enum CallState
{
	CALL_PENDING = 0,			/* not sent yet */
	CALL_SENT,					/* query in flight */
	CALL_FINISHED				/* delivered, or failed */
} CallState;

typedef struct FanoutCallState
{
	uint64		call_id;
	RpcKind		kind;
	const char *const *params;
	int			nparams;
	FanoutResultFn fn;
	void	   *arg;
	FanoutStats *stats;
	CallState  *calls;
	bool		done;			/* caller heard enough */
} FanoutCallState;

static uint64 last_call_id = 0;

static void Finish(FanoutCallState *fc, PeerConnection **peers, int host,
				   PGresult *res, const char *error);
static void TrySend(FanoutCallState *fc, PeerConnection **peers, int host);
static void Progress(FanoutCallState *fc, PeerConnection **peers, int npeers,
					 int host);

/*
 * Finish ends one host's part of the call and hands its answer (or error)
 * to the caller, unless the caller already has what it needs.
 */
static void
Finish(FanoutCallState *fc, PeerConnection **peers, int host, PGresult *res,
	   const char *error)
{
	fc->calls[host] = CALL_FINISHED;
	if (error != NULL)
	{
		fc->stats->failed++;
		if (fc->stats->first_error == NULL)
			fc->stats->first_error = psprintf("%s: %s", peers[host]->display,
											  PaxosTrimMessage(error));
	}
	else
		fc->stats->answered++;
	if (!fc->done && fc->fn != NULL)
		fc->done = fc->fn(fc->arg, host, res, error);
}

/* TrySend sends the call's query to an idle peer (preparing it first once). */
static void
TrySend(FanoutCallState *fc, PeerConnection **peers, int host)
{
	PeerConnection *peer = peers[host];
	uint32		bit = 1u << fc->kind;
	int			ok;

	if (peer->state == PEER_DISCONNECTED)
	{
		Finish(fc, peers, host, NULL,
			   peer->last_error ? peer->last_error : "not connected");
		return;
	}
	if (peer->state != PEER_IDLE)
		return;					/* still connecting, or an older query in flight */
	if (PeerSendDeferred(peer))
		return;					/* earlier learn requests go first */

	if ((peer->prepared & bit) == 0)
	{
		ok = PQsendPrepare(peer->conn, PeerStatementName(fc->kind),
						   PeerStatementSql(fc->kind), 0, NULL);
		peer->state = PEER_PREPARING;
		peer->inflight_kind = fc->kind;
	}
	else
	{
		ok = PQsendQueryPrepared(peer->conn, PeerStatementName(fc->kind),
								 fc->nparams, fc->params, NULL, NULL, 0);
		peer->state = PEER_BUSY;
		fc->calls[host] = CALL_SENT;
	}
	peer->owner = fc->call_id;
	peer->busy_since = GetCurrentTimestamp();
	if (!ok)
	{
		PeerDisconnect(peer, PQerrorMessage(peer->conn));
		Finish(fc, peers, host, NULL, peer->last_error);
	}
}

/*
 * Progress reads whatever a peer's socket has for us: the next step of a
 * connection attempt, or results.  A query is complete when libpq has no
 * more results for it; then the peer is idle again and, if the query was
 * ours, its answer is delivered.
 */
static void
Progress(FanoutCallState *fc, PeerConnection **peers, int npeers, int host)
{
	PeerConnection *peer = peers[host];

	if (peer->state == PEER_CONNECTING)
	{
		peer->poll = PQconnectPoll(peer->conn);
		if (peer->poll == PGRES_POLLING_OK)
			peer->state = PEER_IDLE;
		else if (peer->poll == PGRES_POLLING_FAILED)
			PeerDisconnect(peer, PQerrorMessage(peer->conn));
		return;
	}
	if (peer->state != PEER_BUSY && peer->state != PEER_PREPARING)
		return;

	if (!PQconsumeInput(peer->conn))
	{
		PeerDisconnect(peer, PQerrorMessage(peer->conn));
		if (fc->calls[host] == CALL_SENT)
			Finish(fc, peers, host, NULL, peer->last_error);
		return;
	}
	while (!PQisBusy(peer->conn))
	{
		PGresult   *res = PQgetResult(peer->conn);
		bool		mine = (peer->owner == fc->call_id);

		if (res != NULL)
		{
			/* keep the first result of the query, whoever it belongs to */
			if (peer->result == NULL)
				peer->result = res;
			else
				PQclear(res);
			continue;
		}

		/* the query is complete */
		res = peer->result;
		peer->result = NULL;
		if (peer->state == PEER_PREPARING)
		{
			bool		prepared = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

			peer->state = PEER_IDLE;
			if (prepared)
				peer->prepared |= 1u << peer->inflight_kind;
			else if (mine)
				Finish(fc, peers, host, NULL,
					   res ? PQresultErrorMessage(res) : "could not prepare statement");
			else
				PeerDisconnect(peer, res ? PQresultErrorMessage(res) : "could not prepare statement");
		}
		else
		{
			peer->state = PEER_IDLE;
			if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
				peer->answered_at = GetCurrentTimestamp();
			if (mine && fc->calls[host] == CALL_SENT)
			{
				if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
					Finish(fc, peers, host, res, NULL);
				else
					Finish(fc, peers, host, NULL,
						   res ? PQresultErrorMessage(res) : "no result");
			}
		}
		if (res)
			PQclear(res);
		break;
	}
}

/*
 * PaxosRpcTimeoutFor is how long a peer may take to answer a request that
 * carries these log values (NULL: none): pg_paxos.rpc_timeout, and a
 * second more per MB.  Storing and flushing a large entry (a transaction of 100,000
 * rows is several MB) takes a busy node longer than the usual request, and
 * a proposer that gives up on it only sends it all again.
 */
int
PaxosRpcTimeoutFor(const char *values)
{
	size_t		bytes = values != NULL ? strlen(values) : 0;

	return PaxosRpcTimeoutMs + (int) Min(bytes / 1024, (size_t) 3600 * 1000);
}

/*
 * FanoutCall sends RPC `kind` with `params` to every peer and feeds the
 * answers to fn until fn returns true, every peer has answered or failed,
 * or timeout_ms has passed.  stats counts what happened.  With fn NULL it
 * only sends, to the peers that are idle, and returns at once; a learn
 * request for a busy peer is then kept and sent when the peer is idle.
 */
void
FanoutCall(PeerConnection **peers, int npeers, RpcKind kind,
		   const char *const *params, int nparams, int timeout_ms,
		   FanoutResultFn fn, void *arg, FanoutStats *stats)
{
	FanoutCallState fc;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz deadline = TimestampTzPlusMilliseconds(start, timeout_ms);
	WaitEvent  *events = palloc(sizeof(WaitEvent) * (npeers + 2));
	int			i;

	memset(stats, 0, sizeof(*stats));
	fc.call_id = ++last_call_id;
	fc.kind = kind;
	fc.params = params;
	fc.nparams = nparams;
	fc.fn = fn;
	fc.arg = arg;
	fc.stats = stats;
	fc.calls = palloc0(sizeof(CallState) * npeers);
	fc.done = false;

	for (i = 0; i < npeers; i++)
	{
		PeerConnection *peer = peers[i];

		if (peer->state != PEER_DISCONNECTED && peer->state != PEER_IDLE &&
			TimestampDifferenceExceeds(peer->busy_since, start,
									   Max(STUCK_TIMEOUTS * timeout_ms, STUCK_MIN_MS)))
			PeerDisconnect(peer, "peer stopped answering");
		if (peer->state == PEER_DISCONNECTED && PeerStartConnect(peer))
			peer->busy_since = start;
	}

	while (!fc.done)
	{
		WaitEventSet *set;
		TimestampTz now;
		long		wait_ms;
		int			nwait = 0;
		int			nev;

		for (i = 0; i < npeers && !fc.done; i++)
			if (fc.calls[i] == CALL_PENDING)
				TrySend(&fc, peers, i);
		if (fc.done || fn == NULL)
			break;

		set = CreateWaitEventSet(CurrentMemoryContext, npeers + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < npeers; i++)
		{
			PeerConnection *peer = peers[i];
			uint32		ev;

			if (fc.calls[i] == CALL_FINISHED || peer->conn == NULL ||
				PQsocket(peer->conn) < 0)
				continue;
			if (peer->state == PEER_CONNECTING)
				ev = peer->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			else if (peer->state == PEER_BUSY || peer->state == PEER_PREPARING)
				ev = WL_SOCKET_READABLE;
			else
				continue;
			AddWaitEventToSet(set, ev, PQsocket(peer->conn), NULL, (void *) (intptr_t) i);
			nwait++;
		}
		now = GetCurrentTimestamp();
		if (nwait == 0 || now >= deadline)
		{
			FreeWaitEventSet(set);
			break;
		}
		wait_ms = (long) ((deadline - now + 999) / 1000);
		nev = WaitEventSetWait(set, wait_ms, events, npeers + 2, PG_WAIT_EXTENSION);
		FreeWaitEventSet(set);

		for (i = 0; i < nev; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			else if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
				Progress(&fc, peers, npeers, (int) (intptr_t) events[i].user_data);
		}
	}

	/*
	 * Whoever has not answered by now failed this call; except that a learn
	 * request that could not even be sent is kept for later.
	 */
	for (i = 0; i < npeers; i++)
	{
		if (kind == RPC_CONFIRM && fc.calls[i] == CALL_PENDING)
			PeerDeferLearn(peers[i], params);
		if (fc.calls[i] != CALL_FINISHED && !fc.done && fn != NULL)
		{
			const char *why = peers[i]->state == PEER_DISCONNECTED && peers[i]->last_error
				? peers[i]->last_error : psprintf("no answer within %d ms", timeout_ms);

			Finish(&fc, peers, i, NULL, why);
		}
	}
	pfree(fc.calls);
	pfree(events);
}

/*
 * FanoutFlushDeferred delivers the learn requests this process kept for
 * busy peers (FanoutCall keeps them for its next call): it reads and drops
 * the answers still in flight, sends what was kept, and returns when
 * nothing is left, when the latch is set (new work: left set for the
 * caller) or after timeout_ms.  The batcher calls it when it has nothing
 * to append, so that a round's decision reaches every member now, not
 * with the next round, which may be a long time coming.
 */
void
FanoutFlushDeferred(int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	FanoutCallState fc;
	FanoutStats stats;
	PeerConnection **peers;
	WaitEvent  *events;
	int			npeers;
	int			i;

	peers = PeerAll(&npeers);
	/* the usual case, after every pass of the worker: nothing to read or send */
	for (i = 0; i < npeers; i++)
		if (peers[i]->state == PEER_BUSY || peers[i]->state == PEER_PREPARING ||
			peers[i]->deferred != NIL)
			break;
	if (i == npeers)
		return;
	memset(&fc, 0, sizeof(fc));
	memset(&stats, 0, sizeof(stats));
	fc.call_id = ++last_call_id;	/* owns nothing: answers are dropped */
	fc.stats = &stats;
	fc.calls = palloc(sizeof(CallState) * npeers);
	for (i = 0; i < npeers; i++)
		fc.calls[i] = CALL_FINISHED;
	events = palloc(sizeof(WaitEvent) * (npeers + 2));

	for (;;)
	{
		WaitEventSet *set;
		TimestampTz now;
		int			nwait = 0;
		int			nev;
		bool		latch = false;

		set = CreateWaitEventSet(CurrentMemoryContext, npeers + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < npeers; i++)
		{
			PeerConnection *peer = peers[i];

			(void) PeerSendDeferred(peer);
			if ((peer->state == PEER_BUSY || peer->state == PEER_PREPARING) &&
				peer->conn != NULL && PQsocket(peer->conn) >= 0)
			{
				AddWaitEventToSet(set, WL_SOCKET_READABLE, PQsocket(peer->conn), NULL,
								  (void *) (intptr_t) i);
				nwait++;
			}
		}
		now = GetCurrentTimestamp();
		if (nwait == 0 || now >= deadline)
		{
			FreeWaitEventSet(set);
			break;
		}
		nev = WaitEventSetWait(set, (long) ((deadline - now + 999) / 1000), events,
							   npeers + 2, PG_WAIT_EXTENSION);
		FreeWaitEventSet(set);
		for (i = 0; i < nev; i++)
		{
			if (events[i].events & WL_LATCH_SET)
				latch = true;
			else if (events[i].events & WL_SOCKET_READABLE)
				Progress(&fc, peers, npeers, (int) (intptr_t) events[i].user_data);
		}
		if (latch)
			break;
	}
	pfree(fc.calls);
	pfree(events);
}
