/*
 * standing_promise.c
 *    An acceptor's standing promise in a group: a leader's ballot promised
 *    for every round from some round on (core/paxos_core.h, px_standing),
 *    kept in pgp_metadata.standing_promise and asked for with
 *    paxos_request_standing_prepare (acceptor_rpc.c).
 *
 * Granting one reports whether anything was accepted above its round, and
 * the proposer skips phase 1 only where nothing was: so a grant must not
 * miss an acceptance that is in flight under a lower ballot.  Every
 * prepare and accept of the group therefore holds a share lock on the
 * group's promises from before it reads the standing promise until it
 * commits, and a grant holds it exclusively.  The grant waits for no row
 * while it holds it (it reads the round, and writes only its own table),
 * and takes it only when it is free instead of queueing for it: acceptor
 * steps, which may wait for a round's row, never queue behind a grant.
 * An acceptor step can hold its share for long: its transaction ends only
 * once its answer is read, and a proposer that heard from a majority
 * reads a large late answer only with its next call.  So a grant that
 * does not get the lock soon gives way: the call is then an ordinary
 * phase 1b (acceptor_rpc.c), and the proposer asks again later.
 */
#include "pg_paxos.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* The fourth field of the advisory lock tag of a group's promises. */
#define PROMISES_LOCK_KIND 3
/* How long a grant tries for the lock, and sleeps between tries. */
#define GRANT_WAIT_MS 20
#define GRANT_RETRY_US 200

static void PromisesTag(const char *group_id, LOCKTAG *tag);
static bool LockPromisesWhenFree(const char *group_id);
static void SaveStanding(const char *group_id, const px_standing *standing);

/*
 * PromisesTag: an advisory lock tag of a kind of its own, so that no
 * user's advisory lock meets it.
 */
static void
PromisesTag(const char *group_id, LOCKTAG *tag)
{
	uint32		hash = hash_bytes((const unsigned char *) group_id, strlen(group_id));

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, hash, 0, PROMISES_LOCK_KIND);
}

/* PaxosLockPromises: the share lock of an acceptor step, until commit. */
void
PaxosLockPromises(const char *group_id)
{
	LOCKTAG		tag;

	PromisesTag(group_id, &tag);
	(void) LockAcquire(&tag, ShareLock, false, false);
}

/*
 * LockPromisesWhenFree: the exclusive lock of a grant, never queued for;
 * false if it did not come free within GRANT_WAIT_MS.
 */
static bool
LockPromisesWhenFree(const char *group_id)
{
	LOCKTAG		tag;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   GRANT_WAIT_MS);

	PromisesTag(group_id, &tag);
	while (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		if (GetCurrentTimestamp() > deadline)
			return false;
		pg_usleep(GRANT_RETRY_US);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * PaxosLoadStanding reads this acceptor's standing promise in a group with
 * a snapshot of its own, as every acceptor read does (READ COMMITTED,
 * which acceptor_rpc.c requires): the caller holds the group's promises
 * lock, and a grant that committed while it waited for it must bind it.
 * The statement's snapshot, taken before, would not show it (a lower
 * ballot then got a value accepted in a round the grant had reported free).
 */
void
PaxosLoadStanding(const char *group_id, px_standing *standing)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	px_standing_init(standing);
	values[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_plan(PaxosKeptPlan(&plan, "SELECT from_round, proposal_num, proposer_id"
									   " FROM pgp_metadata.standing_promise WHERE group_id = $1",
									   1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the standing promise of group \"%s\"", group_id);
	if (SPI_processed == 0)
		return;
	standing->valid = true;
	standing->from_round = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	(void) px_ballot_set(&standing->ballot,
						 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull)),
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
}

/* SaveStanding makes a new standing promise durable (at commit). */
static void
SaveStanding(const char *group_id, const px_standing *standing)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, INT8OID, INT8OID, TEXTOID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(standing->from_round);
	values[2] = Int64GetDatum(standing->ballot.number);
	values[3] = CStringGetTextDatum(standing->ballot.proposer);
	if (SPI_execute_plan(PaxosKeptPlan(&plan, "INSERT INTO pgp_metadata.standing_promise"
									   " VALUES ($1, $2, $3, $4) ON CONFLICT (group_id) DO UPDATE"
									   " SET from_round = $2, proposal_num = $3, proposer_id = $4",
									   4, types),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_paxos: could not record the standing promise of group \"%s\"",
			 group_id);
}

/*
 * PaxosStandingPrepare is phase 1b of round for ballot, and, if promised,
 * the standing promise of ballot from round on: promised only if both can
 * be given (the round's own row is not written: the standing promise
 * covers it).  A refusal reports the higher of the round's promise and
 * the standing one, for the proposer to go above.  Fills group and reply;
 * returns whether the standing promise was granted.  The exclusive lock
 * is held until commit: the caller reads the highest accepted round under
 * it.  Returns false at once, filling nothing, if the lock is busy.
 */
bool
PaxosStandingPrepare(const char *group_id, int64 round, const px_ballot *ballot,
					 GroupInfo *group, px_promise *reply, bool *busy)
{
	px_standing standing;
	px_acceptor_state st;

	*busy = !LockPromisesWhenFree(group_id);
	if (*busy)
		return false;
	GroupLoadOrError(group_id, group);
	PaxosLoadStanding(group_id, &standing);
	(void) RoundStoreLoad(group_id, round, false, &st);
	px_standing_apply(&standing, round, &st);
	(void) px_acceptor_prepare(&st, ballot, reply);
	if (!reply->promised)
		return false;
	if (!px_standing_grant(&standing, round, ballot))
	{
		reply->promised = false;
		reply->promised_ballot = standing.ballot;
		return false;
	}
	SaveStanding(group_id, &standing);
	return true;
}
