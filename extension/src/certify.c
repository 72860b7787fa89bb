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
 * highest certified round, and applying never waits for anything but the
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
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(paxos_certify);

typedef struct CertifyCollector
{
	bool		answered;
	int64		conflict;
} CertifyCollector;

static int64 CertifyRound(const char *group_id, int64 round, px_value value);
static int64 CertifyUpTo(const char *group_id, int64 max_round);
static bool OnCertified(void *arg, int host, PGresult *res, const char *error);

/* PaxosIsTransactionEntry tells whether a log value is a transaction. */
bool
PaxosIsTransactionEntry(px_value value)
{
	return value.id != NULL && value.data != NULL &&
		strncmp(value.id, PAXOS_TXN_PREFIX, strlen(PAXOS_TXN_PREFIX)) == 0;
}

/*
 * CertifyRound certifies one round (the caller goes in log order) and
 * records its outcome; returns the conflicting round, or -1 if it commits
 * (anything that is not a transaction "commits": it is applied as it is).
 */
static int64
CertifyRound(const char *group_id, int64 round, px_value value)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int64		conflict = -1;
	Oid			otypes[4] = {TEXTOID, INT8OID, BOOLOID, INT8OID};

	if (PaxosIsTransactionEntry(value))
	{
		bool		isnull;
		Datum		d;

		values[0] = CStringGetTextDatum(group_id);
		values[1] = CStringGetTextDatum(value.data);
		values[2] = Int64GetDatum(round);
		if (SPI_execute_with_args("SELECT max(k.round_num) FROM pgp_metadata.cert_key k"
								  " WHERE k.group_id = $1"
								  " AND k.key IN (SELECT jsonb_array_elements_text($2::jsonb->'check'))"
								  " AND k.round_num > ($2::jsonb->>'x')::bigint",
								  2, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_paxos: could not certify round " INT64_FORMAT, round);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			conflict = DatumGetInt64(d);
		else if (SPI_execute_with_args("INSERT INTO pgp_metadata.cert_key (group_id, key, round_num)"
									   " SELECT $1, key, $3 FROM jsonb_array_elements_text($2::jsonb->'write') key"
									   " ON CONFLICT (group_id, key) DO UPDATE SET round_num = EXCLUDED.round_num",
									   3, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "pg_paxos: could not record the keys of round " INT64_FORMAT, round);
	}

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	values[2] = BoolGetDatum(conflict < 0);
	values[3] = Int64GetDatum(conflict);
	nulls[3] = conflict < 0 ? 'n' : ' ';
	if (SPI_execute_with_args("INSERT INTO pgp_metadata.outcome (group_id, round_num, committed, conflict_round)"
							  " VALUES ($1, $2, $3, $4)",
							  4, otypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record the outcome of round " INT64_FORMAT, round);
	return conflict;
}

/*
 * CertifyUpTo certifies, in order, every round up to max_round not
 * certified yet, learning them first; returns the conflict of max_round.
 */
static int64
CertifyUpTo(const char *group_id, int64 max_round)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	bool		isnull;
	Datum		d;
	int64		cursor;
	int64		round;
	int64		conflict = -1;

	(void) PaxosLockGroup(PAXOS_CERTIFY_LOCK, group_id, false, true);
	SPI_connect();
	values[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_with_args("SELECT max(round_num) FROM pgp_metadata.outcome WHERE group_id = $1",
							  1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not find the certified rounds");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	cursor = isnull ? -1 : DatumGetInt64(d);
	SPI_finish();

	if (cursor < max_round)
		(void) PaxosLearnLog(group_id, cursor + 1, max_round);

	SPI_connect();
	for (round = cursor + 1; round <= max_round; round++)
	{
		px_acceptor_state st;

		CHECK_FOR_INTERRUPTS();
		if (!RoundStoreLoad(group_id, round, false, &st) || !st.decided)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("round " INT64_FORMAT " of paxos group \"%s\" could not be learned",
							round, group_id)));
		conflict = CertifyRound(group_id, round, st.value);
	}
	if (cursor >= max_round)
	{
		values[0] = CStringGetTextDatum(group_id);
		values[1] = Int64GetDatum(max_round);
		if (SPI_execute_with_args("SELECT conflict_round FROM pgp_metadata.outcome"
								  " WHERE group_id = $1 AND round_num = $2",
								  2, types, values, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "pg_paxos: round " INT64_FORMAT " has no outcome", max_round);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		conflict = isnull ? -1 : DatumGetInt64(d);
	}
	SPI_finish();
	return conflict;
}

/*
 * paxos_certify (RPC, called by a node on itself): certify every round up
 * to max_round_num; returns the round that max_round_num conflicts with,
 * or NULL if it commits.
 */
Datum
paxos_certify(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	int64		max_round = PaxosInt64Arg(fcinfo, 1, "max_round_num");
	GroupInfo	group;
	int64		conflict;

	PaxosCheckRoundNumber(max_round, "max_round_num");

	/*
	 * Certification is a function of the log: if a crash loses it, it is
	 * done again, the same.  No need to wait for the WAL flush.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	GroupLoadOrError(group_id, &group);
	SPI_finish();
	conflict = CertifyUpTo(group_id, max_round);
	if (conflict < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(conflict);
}

/* OnCertified reads the answer of paxos_certify. */
static bool
OnCertified(void *arg, int host, PGresult *res, const char *error)
{
	CertifyCollector *cc = (CertifyCollector *) arg;

	if (res == NULL || PQntuples(res) != 1)
		return false;
	cc->answered = true;
	cc->conflict = PQgetisnull(res, 0, 0) ? -1 : strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	return true;
}

/*
 * PaxosCertifyThroughSelf has this node's acceptor certify every round up
 * to `round`; returns the round `round` conflicts with, or -1.
 */
int64
PaxosCertifyThroughSelf(const char *group_id, int64 round)
{
	PeerConnection *self = PaxosSelfPeer(group_id);
	char		round_str[32];
	const char *params[2];
	CertifyCollector cc = {false, -1};
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
	return cc.conflict;
}
