/*
 * submit.c
 *    How a committing transaction's entry reaches the log: through the
 *    leader's batcher, on this node or forwarded to the leader's node, or
 *    appended alone when no leader is known.
 *
 * A forwarded entry whose fate is unknown (the leader died or stopped
 * answering after the entry was sent) is settled with a cancellation:
 * the origin appends "cancel <txn id>" itself, with full Paxos, and
 * certifies the log up to it.  If the entry was chosen before the
 * cancellation, its outcome stands; if not, certification makes it fail
 * wherever it appears later (certify.c), so it can be sent again under a
 * new id.  No transaction is ever both reported failed and applied.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/pg_prng.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(paxos_submit);

/* Attempts to hand an entry to a leader before appending it alone. */
#define SUBMIT_ATTEMPTS 3

/* pg_paxos.entry_lifetime: rounds past submission an entry may commit in. */
int			PaxosEntryLifetimeRounds = 1000000;

typedef struct SubmitCollector
{
	bool		answered;
	bool		redirected;		/* the peer is not the leader */
	PaxosBatchResult *result;
} SubmitCollector;

static bool OnSubmitted(void *arg, int host, PGresult *res, const char *error);
static bool ForwardToLeader(const char *connstr, const char *group_id,
							const char *entry, PaxosBatchResult *result);
static bool ResolveInDoubt(const char *group_id, const char *txn_id, int64 until,
						   PaxosBatchResult *result);
static void AppendAlone(const char *group_id, const char *entry,
						PaxosBatchResult *result);

/*
 * PaxosAppendAlone appends a value in a round of its own, holding a
 * node-local lock per group: appenders of one node that compete for the
 * same round only preempt each other.
 */
int64
PaxosAppendAlone(const char *group_id, const char *value_id, const char *value)
{
	volatile int64 round = -1;

	(void) PaxosLockGroup(PAXOS_APPEND_LOCK, group_id, true, true);
	PG_TRY();
	{
		round = PaxosAppendValue(group_id, value_id, value);
	}
	PG_FINALLY();
	{
		PaxosUnlockGroup(PAXOS_APPEND_LOCK, group_id);
	}
	PG_END_TRY();
	return round;
}

/* AppendAlone appends one transaction as a batch of one and certifies it. */
static void
AppendAlone(const char *group_id, const char *entry, PaxosBatchResult *result)
{
	char	   *value = psprintf("[%s]", entry);
	char	   *value_id = psprintf(PAXOS_TXN_PREFIX "%s/%d/%016llx", PaxosOwnNodeId(),
									MyProcPid, (unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	int			n;
	int64	   *conflicts;

	memset(result, 0, sizeof(*result));
	result->round = PaxosAppendAlone(group_id, value_id, value);
	conflicts = PaxosCertifyRound(group_id, result->round, &n);
	result->index = 0;
	result->conflict = n > 0 ? conflicts[0] : -1;
	result->ok = true;
}

/* OnSubmitted reads paxos_submit's answer. */
static bool
OnSubmitted(void *arg, int host, PGresult *res, const char *error)
{
	SubmitCollector *sc = (SubmitCollector *) arg;
	PaxosBatchResult *r = sc->result;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	sc->answered = true;
	memset(r, 0, sizeof(*r));
	if (!PQgetisnull(res, 0, 0))
	{
		r->ok = true;
		r->round = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
		r->index = atoi(PQgetvalue(res, 0, 1));
		r->conflict = PQgetisnull(res, 0, 2) ? -1 : strtoi64(PQgetvalue(res, 0, 2), NULL, 10);
		return true;
	}
	r->in_doubt = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	sc->redirected = !r->in_doubt;
	strlcpy(r->error, PQgetvalue(res, 0, 4), sizeof(r->error));
	return true;
}

/*
 * ForwardToLeader sends an entry to the leader's node.  False if it is not
 * (or no longer) the leader and nothing was queued there; otherwise the
 * result says what happened, in_doubt if nobody can tell yet.
 */
static bool
ForwardToLeader(const char *connstr, const char *group_id, const char *entry,
				PaxosBatchResult *result)
{
	PeerConnection *leader = PeerGet(connstr);
	const char *params[2] = {group_id, entry};
	SubmitCollector sc = {false, false, result};
	FanoutStats stats;

	/*
	 * A leader answers within one round trip to its acceptors (longer for
	 * a large entry), unless it froze or lost its majority: then stop
	 * waiting after a few leader timeouts and settle the entry (cancelling
	 * it is safe even if the leader wakes up and appends it later).
	 */
	FanoutCall(&leader, 1, RPC_SUBMIT, params, 2,
			   Max(PaxosRpcTimeoutFor(entry), 4 * PaxosLeaderTimeoutMs),
			   OnSubmitted, &sc, &stats);
	if (!sc.answered)
	{
		memset(result, 0, sizeof(*result));
		result->in_doubt = true;
		strlcpy(result->error, stats.first_error ? stats.first_error : "no answer",
				sizeof(result->error));
		return true;
	}
	return !sc.redirected;
}

/*
 * ResolveInDoubt settles an entry whose fate is unknown (see the file
 * header).  True if it was chosen (result says where and how it was
 * certified); false if it never will be.
 */
static bool
ResolveInDoubt(const char *group_id, const char *txn_id, int64 until,
			   PaxosBatchResult *result)
{
	char	   *cancel_id = psprintf(PAXOS_CANCEL_PREFIX "%s/%d/%016llx", PaxosOwnNodeId(),
									 MyProcPid, (unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	int64		cancel_round;
	int			n;
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];
	bool		found;

	ereport(LOG,
			(errmsg("pg_paxos: settling transaction %s of group \"%s\" after: %s",
					txn_id, group_id, result->error)));
	cancel_round = PaxosAppendAlone(group_id, cancel_id, PaxosCancelValue(txn_id, until));
	(void) PaxosCertifyRound(group_id, cancel_round, &n);

	/* the certifier committed after this transaction's snapshot: look now */
	PushActiveSnapshot(GetLatestSnapshot());
	SPI_connect();
	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(txn_id);
	values[2] = Int64GetDatum(cancel_round);
	if (SPI_execute_with_args("SELECT round_num, entry_index, conflict_round FROM pgp_metadata.outcome"
							  " WHERE group_id = $1 AND txn_id = $2 AND round_num < $3"
							  " ORDER BY round_num LIMIT 1",
							  3, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not look up transaction %s", txn_id);
	found = SPI_processed == 1;
	memset(result, 0, sizeof(*result));
	if (found)
	{
		bool		isnull;
		Datum		d;

		result->ok = true;
		result->round = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		result->index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		result->conflict = isnull ? -1 : DatumGetInt64(d);
	}
	SPI_finish();
	PopActiveSnapshot();
	return found;
}

/*
 * PaxosSubmitTransaction puts a transaction's entry in the log; result
 * says where it went, under which id, and how it was certified.  body is the
 * entry's JSON object without its id and lifetime, which are added here: an
 * entry that was cancelled is sent again under a new id.  Its lifetime ends
 * pg_paxos.entry_lifetime rounds past the highest round this node knows
 * decided (base_round at least): certification fails it after that, so a
 * cancellation is kept no longer (certify.c).
 */
void
PaxosSubmitTransaction(const char *group_id, const char *txn_id_base,
					   int64 base_round, const char *body, PaxosBatchResult *result)
{
	int			attempt;

	for (attempt = 0;; attempt++)
	{
		char	   *txn_id = psprintf("%s.%d", txn_id_base, attempt);
		int64		until = Max(base_round, PaxosDecidedThrough(group_id)) +
			PaxosEntryLifetimeRounds;
		char	   *entry = psprintf("{\"id\":\"%s\",\"until\":" INT64_FORMAT ",%s",
									 txn_id, until, body);
		PaxosLeaderInfo leader;

		CHECK_FOR_INTERRUPTS();
		if (attempt >= SUBMIT_ATTEMPTS || !PaxosKnownLeader(group_id, &leader) ||
			!PaxosBatchFits(strlen(entry)))
		{
			/* no leader to hand it to: full Paxos from here */
			AppendAlone(group_id, entry, result);
			strlcpy(result->txn_id, txn_id, sizeof(result->txn_id));
			result->until = until;
			return;
		}
		if (leader.is_self)
			PaxosBatchSubmit(group_id, entry, result);
		else if (!ForwardToLeader(leader.connstr, group_id, entry, result))
		{
			/* not the leader (any more): wait for news of the new one */
			pg_usleep(Min(PaxosLeaderTimeoutMs, 200) * 1000L);
			continue;
		}
		if (!result->ok && !result->in_doubt)
			continue;			/* nothing was appended: try again */
		if (!result->ok && !ResolveInDoubt(group_id, txn_id, until, result))
			continue;			/* cancelled: send it again */

		/*
		 * The leader certified it as every node will (certification is a
		 * function of the log): no need to wait for this node's own.
		 */
		strlcpy(result->txn_id, txn_id, sizeof(result->txn_id));
		result->until = until;
		return;
	}
}

/*
 * paxos_submit (RPC, called by the origin of a transaction on the leader's
 * node): queue an entry for the leader's batcher and wait for its round.
 * A node that is not the leader answers without a round, and says so.
 */
Datum
paxos_submit(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	char	   *entry = PaxosTextArg(fcinfo, 1, "entry");
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	PaxosLeaderInfo leader;
	PaxosBatchResult result;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_paxos: paxos_submit must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	memset(&result, 0, sizeof(result));
	if (!PaxosKnownLeader(group_id, &leader) || !leader.is_self)
		strlcpy(result.error, "this node is not the leader", sizeof(result.error));
	else if (!PaxosBatchFits(strlen(entry)))
		strlcpy(result.error, "the entry is too large to batch", sizeof(result.error));
	else
		PaxosBatchSubmit(group_id, entry, &result);

	values[0] = Int64GetDatum(result.round);
	values[1] = Int32GetDatum(result.index);
	values[2] = Int64GetDatum(result.conflict);
	nulls[0] = nulls[1] = !result.ok;
	nulls[2] = !result.ok || result.conflict < 0;
	values[3] = BoolGetDatum(result.in_doubt);
	values[4] = CStringGetTextDatum(result.error);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
