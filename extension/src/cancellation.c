/*
 * cancellation.c
 *    pgp_metadata.cancelled_txn: the transactions their origin cancelled
 *    (submit.c), as certification records, consults and forgets them.
 *
 * A cancellation takes effect at its place in the log: an entry of that
 * transaction later in the log fails against the cancellation's round.  It
 * carries the last round the entry could commit in anyway (its lifetime,
 * submit.c); once certification has passed that round, the row is deleted.
 * Since an entry past its lifetime fails whatever the table says
 * (certify.c), when a node forgets a row changes no outcome.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

/* Whether the group had cancellations when the pass began (see PaxosCancelledRound). */
static bool any_cancelled = true;

/*
 * PaxosCancellationsStart reads, at the start of a certification pass,
 * whether the group has any cancellation (mostly not: then no lookups).
 */
void
PaxosCancellationsStart(const char *group_id)
{
	static SPIPlanPtr plan = NULL;

	any_cancelled = PaxosGroupTest(&plan,
								   "SELECT EXISTS (SELECT 1 FROM pgp_metadata.cancelled_txn"
								   " WHERE group_id = $1)", group_id);
}

/* PaxosCancelledRound is the round that cancelled txn_id, or -1. */
int64
PaxosCancelledRound(const char *group_id, const char *txn_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	if (!any_cancelled || txn_id == NULL)
		return -1;
	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(txn_id);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "SELECT round_num FROM pgp_metadata.cancelled_txn"
									   " WHERE group_id = $1 AND txn_id = $2", 2, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not look up the cancellation of transaction %s", txn_id);
	if (SPI_processed != 1)
		return -1;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* PaxosRecordCancellation records the cancellation chosen in `round`. */
void
PaxosRecordCancellation(const char *group_id, int64 round, const char *value)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *txn_id;
	int64		until;

	PaxosParseCancel(value, &txn_id, &until);
	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(txn_id);
	values[2] = Int64GetDatum(round);
	values[3] = Int64GetDatum(until);
	if (until < 0)
		nulls[3] = 'n';
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "INSERT INTO pgp_metadata.cancelled_txn"
									   " (group_id, txn_id, round_num, valid_until)"
									   " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, types),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record the cancellation in round " INT64_FORMAT, round);
	any_cancelled = true;
}

/*
 * PaxosForgetExpiredCancellations deletes, once certified through `round`,
 * the cancellations of transactions that can no longer commit: every later
 * round is past their lifetime.
 */
void
PaxosForgetExpiredCancellations(const char *group_id, int64 round)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];

	if (!any_cancelled)
		return;
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	if (SPI_execute_plan(PaxosKeptPlan(&plan,
									   "DELETE FROM pgp_metadata.cancelled_txn"
									   " WHERE group_id = $1 AND valid_until <= $2", 2, types),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pg_paxos: could not forget expired cancellations");
}
