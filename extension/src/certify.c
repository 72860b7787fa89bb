/*
 * certify.c
 *    Certification of transaction entries: the same decision on every
 *    node, taken from the log alone, in log order.
 *
 * Entry Y, based on round x, fails if a committed entry in (x, Y) wrote a
 * key that Y checks; otherwise it commits and its write keys get round Y in
 * the certification index (pgp_metadata.cert_key: the last committed round
 * that wrote each key).  Every round gets a row in pgp_metadata.outcome
 * (committed or not, the conflicting round, whether it is applied here),
 * so a node can restart at any instant: certification resumes after the
 * highest certified round (or the last compacted one, whose outcome rows
 * are gone: compaction.c), and applying never waits for anything but the
 * certification of the rounds it applies.
 *
 * Certification runs in a transaction of its own on the node's acceptor
 * (paxos_certify, called through the node's own connection string), so the
 * caller never holds its locks; one certifier at a time per group, and
 * every read takes a fresh snapshot after the lock (SPI read_only = false),
 * or a certifier would not see what the previous one committed.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(paxos_certify);

typedef struct CertifyCollector
{
	bool		answered;
	int64	   *conflicts;
	int			nentries;
} CertifyCollector;

static int64 CertifyEntry(const char *group_id, int64 round, int index,
						  const char *entry);
static void RecordOutcome(const char *group_id, int64 round, int index,
						  const char *txn_id, int64 conflict);
static int64 *CertifyRoundValue(const char *group_id, int64 round, px_value value,
								int *nentries);
static int64 *CertifyUpTo(const char *group_id, int64 max_round, int *nentries);
static bool OnCertified(void *arg, int host, PGresult *res, const char *error);

/* PaxosIsTransactionEntry tells whether a log value is a transaction batch. */
bool
PaxosIsTransactionEntry(px_value value)
{
	return value.id != NULL && value.data != NULL &&
		strncmp(value.id, PAXOS_TXN_PREFIX, strlen(PAXOS_TXN_PREFIX)) == 0;
}

/*
 * PaxosSplitBatch splits a transaction round's value, a JSON array of
 * transaction objects, into the objects' texts (in the current context).
 * It only tracks nesting and strings: the values were written by
 * capture.c, and whatever else the log holds is data, never executed.
 */
List *
PaxosSplitBatch(const char *value)
{
	List	   *result = NIL;
	const char *p = value;
	const char *start = NULL;
	int			depth = 0;
	bool		in_string = false;

	while (*p && *p != '[')
		p++;
	if (*p == '\0')
		elog(ERROR, "pg_paxos: a transaction round is not a JSON array");
	for (p++; *p; p++)
	{
		if (in_string)
		{
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				in_string = false;
			continue;
		}
		if (*p == '"')
			in_string = true;
		else if (*p == '{' || *p == '[')
		{
			if (depth++ == 0)
				start = p;
		}
		else if (*p == '}' || *p == ']')
		{
			if (depth == 0)
				break;			/* the array's end */
			if (--depth == 0)
				result = lappend(result, pnstrdup(start, p - start + 1));
		}
	}
	if (depth != 0)
		elog(ERROR, "pg_paxos: a transaction round holds malformed JSON");
	return result;
}

/*
 * The certification index as this process last left it: the last round
 * that wrote each key it looked up or wrote (-1: none), valid while the
 * group's certification cursor is where this process left it, in the same
 * log: the round there holds the value it held then (a group dropped and
 * formed again under its name has other values).  The index at a given
 * round is a function of the log, so whoever certified up to there left
 * the same table.  Keys too long to cache are looked up.
 *
 * The cache started empty at cert_cache_floor and took in every key
 * written since, so a key it does not hold was not written after the
 * floor: an entry whose snapshot is at or past the floor need not look it
 * up in pgp_metadata.cert_key (a node catching up certifies thousands of
 * fresh keys a second).
 */
#define CERT_CACHE_KEY_MAX 128
#define CERT_CACHE_ENTRIES_MAX 200000

typedef struct CertCacheEntry
{
	char		key[CERT_CACHE_KEY_MAX];
	int64		round;
} CertCacheEntry;

static HTAB *cert_cache = NULL;
static char cert_cache_group[PAXOS_GROUP_ID_MAX];
static int64 cert_cache_upto = -2;	/* -2: not valid */
static int64 cert_cache_floor = -1;	/* holds every key written after this round */
static char cert_cache_value[256];	/* value id of that round */

/*
 * What one certification pass writes, kept until its end and written with
 * one statement per table: a key written by several entries of the pass
 * once (its last round), the outcome rows in one INSERT.  Lookups during
 * the pass see the keys through the cache (CertCachePut); a key too long
 * to cache is written at once.
 */
typedef struct PendingKey
{
	char		key[CERT_CACHE_KEY_MAX];
	int64		round;
} PendingKey;

typedef struct PendingOutcome
{
	int64		round;
	int			index;
	char	   *txn_id;
	int64		conflict;
} PendingOutcome;

static HTAB *pending_keys = NULL;
static List *pending_outcomes = NIL;

/*
 * CertCacheStart makes the cache valid for certifying from cursor on:
 * kept if this process left the group there, emptied otherwise.  Until
 * CertCacheDone, a failure leaves it invalid.
 */
static void
CertCacheStart(const char *group_id, int64 cursor)
{
	bool		keep = cert_cache != NULL && cert_cache_upto == cursor &&
		strcmp(cert_cache_group, group_id) == 0 &&
		hash_get_num_entries(cert_cache) < CERT_CACHE_ENTRIES_MAX;
	px_acceptor_state st;

	if (keep)
		keep = RoundStoreLoad(group_id, cursor, false, &st) && st.value.id != NULL &&
			strcmp(st.value.id, cert_cache_value) == 0;

	if (!keep)
	{
		if (cert_cache != NULL)
			hash_destroy(cert_cache);
		cert_cache = PaxosBackendHash("pg_paxos certification keys", CERT_CACHE_KEY_MAX,
									  sizeof(CertCacheEntry), true);
		strlcpy(cert_cache_group, group_id, sizeof(cert_cache_group));
		cert_cache_floor = cursor;
	}
	cert_cache_upto = -2;
}

/*
 * CertCacheDone: certified up to round, whose value is value_id, the cache
 * is valid there.
 */
static void
CertCacheDone(int64 round, const char *value_id)
{
	if (value_id == NULL || strlen(value_id) >= sizeof(cert_cache_value))
		return;					/* stays invalid */
	strlcpy(cert_cache_value, value_id, sizeof(cert_cache_value));
	cert_cache_upto = round;
}

/* CertCacheGet finds a key's last writing round (-1: none); false if unknown. */
static bool
CertCacheGet(const char *key, int64 *round)
{
	CertCacheEntry *e;

	if (strlen(key) >= CERT_CACHE_KEY_MAX)
		return false;
	e = hash_search(cert_cache, key, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	*round = e->round;
	return true;
}

static void
CertCachePut(const char *key, int64 round)
{
	CertCacheEntry *e;

	if (strlen(key) >= CERT_CACHE_KEY_MAX)
		return;
	e = hash_search(cert_cache, key, HASH_ENTER, NULL);
	e->round = round;
}

/*
 * CertifyEntry certifies one transaction of a round (the caller goes in
 * log order, and in batch order within a round) and records its outcome;
 * returns the conflicting round, or -1 if it commits.  A transaction whose
 * origin cancelled it earlier in the log (submit.c) fails against the
 * cancellation's round; one past its lifetime fails against its own round,
 * whatever else holds (so forgetting an expired cancellation changes
 * nothing).
 */
static int64
CertifyEntry(const char *group_id, int64 round, int index, const char *entry_text)
{
	static SPIPlanPtr key_plan = NULL;
	static SPIPlanPtr write_plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];
	bool		isnull;
	int64		conflict = -1;
	PaxosEntry	e;
	Datum	   *keys;
	int			nkeys;
	int			i;

	PaxosParseEntry(entry_text, &e);
	if (e.until >= 0 && round > e.until)
	{
		RecordOutcome(group_id, round, index, e.id, round);
		return round;
	}
	values[0] = CStringGetTextDatum(group_id);

	/* one index lookup per key: the keys are few, the index is large */
	deconstruct_array(DatumGetArrayTypeP(e.check), TEXTOID, -1, false, TYPALIGN_INT,
					  &keys, NULL, &nkeys);
	for (i = 0; i < nkeys; i++)
	{
		char	   *key = TextDatumGetCString(keys[i]);
		int64		last;

		if (!CertCacheGet(key, &last))
		{
			/* not written since the floor, which is not after the snapshot */
			if (e.x >= cert_cache_floor && strlen(key) < CERT_CACHE_KEY_MAX)
				continue;
			values[1] = keys[i];
			if (SPI_execute_plan(PaxosKeptPlan(&key_plan,
											   "SELECT round_num FROM pgp_metadata.cert_key"
											   " WHERE group_id = $1 AND key = $2", 2, types),
								 values, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "pg_paxos: could not certify round " INT64_FORMAT, round);
			last = SPI_processed == 0 ? -1 :
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			CertCachePut(key, last);
		}
		if (last > e.x)
			conflict = Max(conflict, last);
	}
	conflict = Max(conflict, PaxosCancelledRound(group_id, e.id));
	if (conflict < 0)
	{
		deconstruct_array(DatumGetArrayTypeP(e.write), TEXTOID, -1, false, TYPALIGN_INT,
						  &keys, NULL, &nkeys);
		values[2] = Int64GetDatum(round);
		for (i = 0; i < nkeys; i++)
		{
			char	   *key = TextDatumGetCString(keys[i]);

			if (strlen(key) < CERT_CACHE_KEY_MAX)
			{
				PendingKey *pk = hash_search(pending_keys, key, HASH_ENTER, NULL);

				pk->round = round;
				CertCachePut(key, round);
				continue;
			}
			values[1] = keys[i];
			if (SPI_execute_plan(PaxosKeptPlan(&write_plan,
											   "INSERT INTO pgp_metadata.cert_key (group_id, key, round_num)"
											   " VALUES ($1, $2, $3) ON CONFLICT (group_id, key)"
											   " DO UPDATE SET round_num = EXCLUDED.round_num", 3, types),
								 values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "pg_paxos: could not record the keys of round " INT64_FORMAT, round);
		}
	}
	RecordOutcome(group_id, round, index, e.id, conflict);
	return conflict;
}

/* RecordOutcome keeps the outcome row of one entry of a round for the pass's end. */
static void
RecordOutcome(const char *group_id, int64 round, int index, const char *txn_id,
			  int64 conflict)
{
	PendingOutcome *o = palloc(sizeof(PendingOutcome));

	o->round = round;
	o->index = index;
	o->txn_id = txn_id ? pstrdup(txn_id) : NULL;
	o->conflict = conflict;
	pending_outcomes = lappend(pending_outcomes, o);
}

/*
 * PendingStart begins a certification pass (in the SPI context, where the
 * outcomes are kept; the keys' table is emptied, whatever a failed pass
 * left there).
 */
static void
PendingStart(void)
{
	if (pending_keys != NULL)
		hash_destroy(pending_keys);
	pending_keys = PaxosBackendHash("pg_paxos keys to record", CERT_CACHE_KEY_MAX,
									sizeof(PendingKey), true);
	pending_outcomes = NIL;
}

/* PendingWrite writes what the pass kept: its keys, then its outcomes. */
static void
PendingWrite(const char *group_id)
{
	static SPIPlanPtr keys_plan = NULL;
	static SPIPlanPtr outcomes_plan = NULL;
	long		nkeys = hash_get_num_entries(pending_keys);
	int			n = list_length(pending_outcomes);
	Datum		values[6];
	HASH_SEQ_STATUS seq;
	PendingKey *pk;
	ListCell   *lc;
	int			i = 0;

	values[0] = CStringGetTextDatum(group_id);
	if (nkeys > 0)
	{
		Oid			types[3] = {TEXTOID, TEXTARRAYOID, INT8ARRAYOID};
		Datum	   *keys = palloc(sizeof(Datum) * nkeys);
		Datum	   *rounds = palloc(sizeof(Datum) * nkeys);

		hash_seq_init(&seq, pending_keys);
		while ((pk = hash_seq_search(&seq)) != NULL)
		{
			keys[i] = CStringGetTextDatum(pk->key);
			rounds[i] = Int64GetDatum(pk->round);
			i++;
		}
		values[1] = PointerGetDatum(construct_array(keys, i, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(rounds, i, INT8OID, 8, FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
		if (SPI_execute_plan(PaxosKeptPlan(&keys_plan,
										   "INSERT INTO pgp_metadata.cert_key (group_id, key, round_num)"
										   " SELECT $1, k, r FROM unnest($2::text[], $3::bigint[]) AS u(k, r)"
										   " ON CONFLICT (group_id, key) DO UPDATE SET round_num = EXCLUDED.round_num",
										   3, types),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "pg_paxos: could not record the certification keys");
	}
	if (n > 0)
	{
		Oid			types[6] = {TEXTOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
		BOOLARRAYOID, INT8ARRAYOID};
		Datum	   *rounds = palloc(sizeof(Datum) * n);
		Datum	   *indexes = palloc(sizeof(Datum) * n);
		Datum	   *txns = palloc(sizeof(Datum) * n);
		bool	   *txn_nulls = palloc(sizeof(bool) * n);
		Datum	   *committed = palloc(sizeof(Datum) * n);
		Datum	   *conflicts = palloc(sizeof(Datum) * n);
		bool	   *conflict_nulls = palloc(sizeof(bool) * n);
		int			dims[1] = {n};
		int			lbs[1] = {1};

		i = 0;
		foreach(lc, pending_outcomes)
		{
			PendingOutcome *o = lfirst(lc);

			rounds[i] = Int64GetDatum(o->round);
			indexes[i] = Int32GetDatum(o->index);
			txns[i] = o->txn_id ? CStringGetTextDatum(o->txn_id) : (Datum) 0;
			txn_nulls[i] = o->txn_id == NULL;
			committed[i] = BoolGetDatum(o->conflict < 0);
			conflicts[i] = Int64GetDatum(o->conflict);
			conflict_nulls[i] = o->conflict < 0;
			i++;
		}
		values[1] = PointerGetDatum(construct_array(rounds, n, INT8OID, 8, FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
		values[2] = PointerGetDatum(construct_array(indexes, n, INT4OID, 4, true, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_md_array(txns, txn_nulls, 1, dims, lbs, TEXTOID,
													   -1, false, TYPALIGN_INT));
		values[4] = PointerGetDatum(construct_array(committed, n, BOOLOID, 1, true, TYPALIGN_CHAR));
		values[5] = PointerGetDatum(construct_md_array(conflicts, conflict_nulls, 1, dims, lbs,
													   INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_plan(PaxosKeptPlan(&outcomes_plan,
										   "INSERT INTO pgp_metadata.outcome"
										   " (group_id, round_num, entry_index, txn_id, committed, conflict_round)"
										   " SELECT $1, r, i, t, c, cr"
										   " FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bool[], $6::bigint[])"
										   " AS u(r, i, t, c, cr)",
										   6, types),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "pg_paxos: could not record the certification outcomes");
	}
	pending_outcomes = NIL;
}

/*
 * CertifyRoundValue certifies one round (the caller goes in log order):
 * each transaction of a batch in turn; anything else "commits" (it is
 * applied as it is), and a cancellation or a leader entry takes effect
 * here, at its place in the log.  Returns the conflict of each entry.
 */
static int64 *
CertifyRoundValue(const char *group_id, int64 round, px_value value, int *nentries)
{
	int64	   *conflicts;

	if (PaxosIsTransactionEntry(value))
	{
		List	   *entries = PaxosSplitBatch(value.data);
		ListCell   *lc;
		int			i = 0;

		conflicts = palloc(sizeof(int64) * Max(1, list_length(entries)));
		foreach(lc, entries)
		{
			conflicts[i] = CertifyEntry(group_id, round, i, (char *) lfirst(lc));
			i++;
		}
		*nentries = i;
		return conflicts;
	}
	if (value.id != NULL && value.data != NULL &&
		strncmp(value.id, PAXOS_CANCEL_PREFIX, strlen(PAXOS_CANCEL_PREFIX)) == 0)
		PaxosRecordCancellation(group_id, round, value.data);
	if (value.id != NULL && value.data != NULL &&
		strncmp(value.id, PAXOS_LEADER_PREFIX, strlen(PAXOS_LEADER_PREFIX)) == 0)
		PaxosLeaderFromLog(group_id, round, value.data);
	RecordOutcome(group_id, round, 0, NULL, -1);
	conflicts = palloc(sizeof(int64));
	conflicts[0] = -1;
	*nentries = 1;
	return conflicts;
}

/*
 * PaxosCertifiedUpTo is the highest round certified here (-1: none).
 * Compacted rounds were applied here, so certified: it is at least the
 * last of them.  Takes a fresh snapshot: a certifier that just committed
 * is seen.
 */
int64
PaxosCertifiedUpTo(const char *group_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	int64		result;

	SPI_connect();
	values[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "SELECT greatest((SELECT round_num FROM pgp_metadata.outcome"
									   "  WHERE group_id = $1 ORDER BY round_num DESC LIMIT 1),"
									   " (SELECT compacted_below - 1 FROM pgp_metadata.\"group\""
									   "  WHERE group_id = $1))",
									   1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_paxos: could not find the certified rounds");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = isnull ? -1 : DatumGetInt64(d);
	SPI_finish();
	return result;
}

/*
 * CertifyUpTo certifies, in order, every round up to max_round not
 * certified yet, learning them first; returns the conflicts of the
 * entries of max_round.
 */
static int64 *
CertifyUpTo(const char *group_id, int64 max_round, int *nentries)
{
	static SPIPlanPtr conflicts_plan = NULL;
	MemoryContext outer = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	bool		isnull;
	Datum		d;
	int64		cursor;
	int64		round;
	int64	   *conflicts = NULL;
	uint64		i;

	*nentries = 0;
	(void) PaxosLockGroup(PAXOS_CERTIFY_LOCK, group_id, false, true);
	cursor = PaxosCertifiedUpTo(group_id);

	if (cursor < max_round)
		(void) PaxosLearnLog(group_id, cursor + 1, max_round);

	SPI_connect();
	if (cursor < max_round)
	{
		CertCacheStart(group_id, cursor);
		PendingStart();
		PaxosCancellationsStart(group_id);
	}
	for (round = cursor + 1; round <= max_round; round++)
	{
		px_acceptor_state st;
		int64	   *c;

		CHECK_FOR_INTERRUPTS();
		if (!RoundStoreLoad(group_id, round, false, &st) || !st.decided)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("round " INT64_FORMAT " of paxos group \"%s\" could not be learned",
							round, group_id)));
		c = CertifyRoundValue(group_id, round, st.value, nentries);
		if (round == max_round)
		{
			conflicts = MemoryContextAlloc(outer, sizeof(int64) * *nentries);
			memcpy(conflicts, c, sizeof(int64) * *nentries);
			CertCacheDone(max_round, st.value.id);
		}
	}
	if (cursor < max_round)
	{
		PendingWrite(group_id);
		PaxosForgetExpiredCancellations(group_id, max_round);
	}
	PaxosNoteCertifiedAtCommit(group_id, max_round);
	if (cursor >= max_round)
	{
		values[0] = CStringGetTextDatum(group_id);
		values[1] = Int64GetDatum(max_round);
		if (SPI_execute_plan(PaxosKeptPlan(&conflicts_plan,
										   "SELECT conflict_round FROM pgp_metadata.outcome"
										   " WHERE group_id = $1 AND round_num = $2 ORDER BY entry_index",
										   2, types),
							 values, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed < 1)
			elog(ERROR, "pg_paxos: round " INT64_FORMAT " has no outcome", max_round);
		*nentries = (int) SPI_processed;
		conflicts = MemoryContextAlloc(outer, sizeof(int64) * *nentries);
		for (i = 0; i < SPI_processed; i++)
		{
			d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			conflicts[i] = isnull ? -1 : DatumGetInt64(d);
		}
	}
	SPI_finish();
	return conflicts;
}

/*
 * PaxosCertifyHere certifies every round up to max_round in the current
 * transaction; returns the conflict of each entry of max_round (-1:
 * commits) and their number.  The caller commits right after and waits for
 * nothing meanwhile (it holds the certification lock): the acceptor
 * (paxos_certify), the batcher and the worker, each in a transaction of
 * its own.
 */
int64 *
PaxosCertifyHere(const char *group_id, int64 max_round, int *nentries)
{
	GroupInfo	group;

	/*
	 * Certification is a function of the log: if a crash loses it, it is
	 * done again, the same.  No need to wait for the WAL flush.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	SPI_finish();
	return CertifyUpTo(group_id, max_round, nentries);
}

/*
 * paxos_certify (RPC, called by a node on itself): certify every round up
 * to max_round_num; returns, for each entry of max_round_num, the round it
 * conflicts with, or NULL if it commits.
 */
Datum
paxos_certify(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		max_round = PaxosInt64Arg(fcinfo, 1, "max_round_num");
	int64	   *conflicts;
	int			n;
	int			i;
	Datum	   *elems;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};

	PaxosCheckRoundNumber(max_round, "max_round_num");
	conflicts = PaxosCertifyHere(group_id, max_round, &n);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	nulls = palloc(sizeof(bool) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		elems[i] = Int64GetDatum(conflicts[i]);
		nulls[i] = conflicts[i] < 0;
	}
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, 1, dims, lbs, INT8OID,
											 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* OnCertified reads the answer of paxos_certify: {c1,NULL,...}. */
static bool
OnCertified(void *arg, int host, PGresult *res, const char *error)
{
	CertifyCollector *cc = (CertifyCollector *) arg;
	char	   *text;
	char	   *tok;
	char	   *save;
	int			n = 0;

	if (res == NULL || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		return false;
	text = pstrdup(PQgetvalue(res, 0, 0));
	cc->conflicts = palloc(sizeof(int64) * (strlen(text) / 2 + 1));
	for (tok = strtok_r(text, "{},", &save); tok != NULL; tok = strtok_r(NULL, "{},", &save))
		cc->conflicts[n++] = strcmp(tok, "NULL") == 0 ? -1 : strtoi64(tok, NULL, 10);
	cc->nentries = n;
	cc->answered = true;
	return true;
}

/*
 * PaxosCertifyRound has this node's acceptor certify every round up to
 * `round`, in a transaction of its own; returns the conflict of each entry
 * of `round` (-1: commits) and their number.
 */
int64 *
PaxosCertifyRound(const char *group_id, int64 round, int *nentries)
{
	PeerConnection *self = PaxosSelfPeer(group_id);
	char		round_str[32];
	const char *params[2];
	CertifyCollector cc = {false, NULL, 0};
	FanoutStats stats;

	snprintf(round_str, sizeof(round_str), INT64_FORMAT, round);
	params[0] = group_id;
	params[1] = round_str;
	FanoutCall(&self, 1, RPC_CERTIFY, params, 2, PaxosTimeoutMs, OnCertified,
			   &cc, &stats);
	if (!cc.answered)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not certify round " INT64_FORMAT " of paxos group \"%s\"",
						round, group_id),
				 errdetail("%s", stats.first_error ? stats.first_error : "no answer")));
	*nentries = cc.nentries;
	return cc.conflicts;
}
