/*
 * snapshot.c
 *    Catching up a member whose peers have compacted away rounds it still
 *    needs: copy the replicated tables and the group's metadata from one
 *    peer's consistent snapshot, then follow the log from there.  The
 *    background worker does it by itself (worker.c).
 *
 * The copy is one transaction here, reading one REPEATABLE READ READ ONLY
 * transaction on the peer, as paxos_join_group does.  Unlike a joining
 * node, this node is a member with acceptor state of its own, so:
 *
 *  - the peer's decided rounds are learned (RoundStoreLearn), never written
 *    over this node's rows: a promise or an acceptance made here in a round
 *    the peer has not decided stays, and learning a chosen value is always
 *    safe;
 *  - rows of rounds below the peer's compaction point are deleted here too,
 *    and compacted_below moves there: those rounds were chosen and applied
 *    by every member that holds the log, and this acceptor, which loses its
 *    state for them, refuses them from now on (PaxosCheckNotCompacted);
 *  - outcome, cert_key, cancelled_txn, ddl_history and local_commit are
 *    replaced by the peer's, and last_applied_round jumps to the peer's: certification resumes after
 *    the peer's last certified round, applying after its last applied one,
 *    exactly where the copied tables stand;
 *  - host is replaced by the peer's (membership changes may be among the
 *    rounds that are gone), then the changes this node knows in rounds the
 *    peer had not decided are applied again.
 *
 * Locks, in this order, each waited for at most 10 s: the applier's lock
 * (nothing applies here meanwhile), the replicated tables in EXCLUSIVE
 * mode and their rows (emptied with DELETE: a local transaction that wrote
 * them finishes first, a later writer waits and then sees the copy, and
 * statements that only read them go on, or wait for the copy instead of
 * blocking it, see PaxosAwaitSnapshot), then the certifier's lock,
 * which such a transaction needs to finish.  Changes are written as the
 * applier writes them (session_replication_role = replica, no capture).
 * DDL of rounds this node had not applied, compacted or not, is replayed
 * first, from the peer's pgp_metadata.ddl_history, so the tables have the
 * peer's columns when the rows come.
 */
#include "pg_paxos.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Where a copied snapshot left this node. */
typedef struct SnapshotPoint
{
	int64		applied;		/* the peer's last_applied_round */
	int64		log_start;		/* compacted_below here now */
} SnapshotPoint;

/* What CopySnapshot asks of the peer's transaction, and what came of it. */
typedef struct SnapshotCopy
{
	const char *group_id;
	const char *display;
	int64		needed;
	SnapshotPoint *point;
	bool		copied;
} SnapshotCopy;

static void SnapshotCopyWork(PGconn *conn, void *arg);

static bool CopySnapshot(const char *group_id, const char *source,
						 const char *display, int64 needed, SnapshotPoint *point);
static bool CopySnapshotRows(PGconn *conn, const char *group_id,
							 const char *display, int64 needed, SnapshotPoint *point);
static void EmptyTables(PGconn *conn, const char *group_id, const char *display);
static void ReplayPeerDdl(PGconn *conn, const char *group_id, const char *display,
						  int64 applied);
static void ExecLocal(const char *sql, int nargs, Oid *types, Datum *values,
					  int expected);
static int64 LearnPeerRounds(PGconn *conn, const char *group_id,
							 const char *display, int64 from_round);
static void ReapplyOwnMembership(const char *group_id, int64 above);

/*
 * PaxosSnapshotNeeded tells whether this node needs a round that is not
 * decided here and that the peers answering now have compacted; if so,
 * *needed is the first such round and *source the answering peer that has
 * applied the most (at least that round).
 */
bool
PaxosSnapshotNeeded(const char *group_id, char **source, int64 *needed)
{
	TimestampTz now = GetCurrentTimestamp();
	GroupView  *v;
	int64		peers_start = 0;
	int64		best_applied = -1;
	char		best[PAXOS_CONNSTR_MAX] = "";
	GroupInfo	group;
	int64		first = -1;
	int			n = 0;
	int			i;

	PaxosLeaderLock(false);
	v = PaxosGroupView(group_id, false);
	for (i = 0; v != NULL && i < v->npeers; i++)
	{
		PeerView   *p = &v->peers[i];

		if (p->last_contact == 0 ||
			TimestampDifferenceExceeds(p->last_contact, now, PaxosLeaderTimeoutMs))
			continue;
		peers_start = Max(peers_start, p->compacted_below);
		if (p->applied > best_applied)
		{
			best_applied = p->applied;
			strlcpy(best, p->connstr, sizeof(best));
		}
	}
	PaxosLeaderUnlock();
	if (peers_start == 0)
		return false;

	SPI_connect();
	if (GroupLoad(group_id, &group) && peers_start > group.last_applied_round + 1)
		n = RoundStoreUndecidedIn(group_id, group.last_applied_round + 1,
								  peers_start - 1, &first, 1);
	SPI_finish();
	if (n == 0 || best_applied < first)
		return false;
	*source = pstrdup(best);
	*needed = first;
	return true;
}

/*
 * PaxosAwaitSnapshot waits, before a strong read, for the background
 * worker to copy a snapshot this node needs: learning cannot catch it up.
 * Once the copy takes the group's tables (EXCLUSIVE), a statement that
 * holds a stronger lock than ACCESS SHARE on one (a write) stops waiting
 * and fails with 40001, which releases it; one that only reads waits.  A node that has just started first gives its peers'
 * heartbeats a moment to say how far they have compacted.  Raises an
 * error after pg_paxos.paxos_timeout.
 */
void
PaxosAwaitSnapshot(const char *group_id)
{
	TimestampTz start = GetCurrentTimestamp();
	char	   *source;
	int64		needed;

	for (;;)
	{
		GroupView  *v;
		bool		heard = false;
		bool		behind = false;
		int64		peers_start = 0;
		int			i;

		PaxosLeaderLock(false);
		v = PaxosGroupView(group_id, false);
		for (i = 0; v != NULL && i < v->npeers; i++)
		{
			heard = heard || v->peers[i].last_contact != 0;
			peers_start = Max(peers_start, v->peers[i].compacted_below);
		}
		/* the view's applied round may lag, never lead */
		behind = v != NULL && v->applied + 1 < peers_start;
		PaxosLeaderUnlock();

		if ((heard || (v != NULL && v->npeers == 0) ||
			 TimestampDifferenceExceeds(PgStartTime, GetCurrentTimestamp(),
										4 * PaxosLeaderTimeoutMs)) &&
			(!behind || !PaxosSnapshotNeeded(group_id, &source, &needed)))
			return;
		/* the copy waits for this statement's locks: give way to it */
		if (PaxosCopying(group_id) && PaxosLocksGroupTables(group_id))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("this node is copying a snapshot of paxos group \"%s\"", group_id),
					 errdetail("The transaction holds a lock on a table of the group that the copy needs."),
					 errhint("Retry: the node takes writes again once the copy is done.")));
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), PaxosTimeoutMs))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this node is still copying a snapshot of paxos group \"%s\"", group_id),
					 errdetail("Its peers have compacted rounds it needs; its background worker copies their state."),
					 errhint("Retry, or read from another node; the server log says why the copy does not finish.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * PaxosCopySnapshot replaces this node's state of a group by a snapshot of
 * the peer at `source` (see the file header), in the current transaction,
 * and logs it.  needed is the round that made it necessary: nothing is
 * done (false) if this node has applied it meanwhile.
 */
bool
PaxosCopySnapshot(const char *group_id, const char *source, int64 needed)
{
	char	   *display = PaxosConnstrForDisplay(source);
	bool		save_applying = PaxosApplying;
	SnapshotPoint point;
	volatile bool copied = false;

	/* TRUNCATE, LOCK and the inserts below are not changes to capture */
	PaxosApplying = true;
	PG_TRY();
	{
		copied = CopySnapshot(group_id, source, display, needed, &point);
	}
	PG_FINALLY();
	{
		PaxosApplying = save_applying;
		PaxosNoteCopying(group_id, false);
	}
	PG_END_TRY();
	if (copied)
		ereport(LOG,
				(errmsg("pg_paxos: group \"%s\": copied a snapshot of round " INT64_FORMAT " from \"%s\": this node needed round " INT64_FORMAT ", which its peers have compacted",
						group_id, point.applied, display, needed),
				 errdetail("The log here now starts at round " INT64_FORMAT "; applying resumes after round " INT64_FORMAT ".",
						   point.log_start, point.applied)));
	return copied;
}

/* CopySnapshot is PaxosCopySnapshot's work; false if it was not needed. */
static bool
CopySnapshot(const char *group_id, const char *source, const char *display,
			 int64 needed, SnapshotPoint *point)
{
	PGconn	   *conn;

	(void) set_config_option("lock_timeout", "10s", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	(void) PaxosLockGroup(PAXOS_APPLY_LOCK, group_id, false, true);

	conn = PaxosConnectOrError(source,
							   psprintf("could not connect to node \"%s\" to copy a snapshot of paxos group \"%s\"",
										display, group_id),
							   "The background worker tries again with a peer that answers.");
	{
		SnapshotCopy sc = {group_id, display, needed, point, false};

		PaxosInPeerSnapshot(conn, display, SnapshotCopyWork, &sc);
		return sc.copied;
	}
}

/* SnapshotCopyWork: CopySnapshotRows in the peer's transaction. */
static void
SnapshotCopyWork(PGconn *conn, void *arg)
{
	SnapshotCopy *sc = (SnapshotCopy *) arg;

	SPI_connect();
	sc->copied = CopySnapshotRows(conn, sc->group_id, sc->display, sc->needed, sc->point);
	SPI_finish();
}

/*
 * CopySnapshotRows does the copy, in the peer's transaction on conn and
 * this node's current one (connected to SPI); false if this node applied
 * `needed` meanwhile.
 */
static bool
CopySnapshotRows(PGconn *conn, const char *group_id, const char *display,
				 int64 needed, SnapshotPoint *point)
{
	PGresult   *res;
	GroupInfo	group;
	int64		config_round;
	int64		peer_start;
	int64		peer_decided;
	Oid			types[4] = {TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[4];

	res = PaxosPeerGroupRow(conn, group_id, display, NULL);
	point->applied = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
	config_round = strtoi64(PQgetvalue(res, 0, 1), NULL, 10);
	peer_start = strtoi64(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);

	GroupLoadOrError(group_id, &group);
	if (group.last_applied_round >= needed)
		return false;
	EmptyTables(conn, group_id, display);
	(void) PaxosLockGroup(PAXOS_CERTIFY_LOCK, group_id, false, true);
	if (point->applied < needed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" has applied paxos group \"%s\" up to round " INT64_FORMAT " only, this node needs round " INT64_FORMAT,
						display, group_id, point->applied, needed)));
	point->log_start = Max(peer_start, group.compacted_below);

	/* the tables' DDL this node has not applied, then their rows */
	ReplayPeerDdl(conn, group_id, display, group.last_applied_round);

	/* the log and the membership */
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(point->log_start);
	ExecLocal("DELETE FROM pgp_metadata.round WHERE group_id = $1 AND round_num < $2",
			  2, types, values, SPI_OK_DELETE);
	ExecLocal("DELETE FROM pgp_metadata.host WHERE group_id = $1", 1, types, values,
			  SPI_OK_DELETE);
	PaxosCopyMetadataRows(conn, group_id, display, "host");
	peer_decided = LearnPeerRounds(conn, group_id, display, point->log_start);
	ReapplyOwnMembership(group_id, peer_decided);

	/* certification state and tables, as of the peer's snapshot */
	ExecLocal("DELETE FROM pgp_metadata.outcome WHERE group_id = $1", 1, types, values,
			  SPI_OK_DELETE);
	ExecLocal("DELETE FROM pgp_metadata.cert_key WHERE group_id = $1", 1, types, values,
			  SPI_OK_DELETE);
	ExecLocal("DELETE FROM pgp_metadata.cancelled_txn WHERE group_id = $1", 1, types,
			  values, SPI_OK_DELETE);
	/* this node's own rows go: the peer's tables replace what they named */
	ExecLocal("DELETE FROM pgp_metadata.local_commit WHERE group_id = $1", 1, types,
			  values, SPI_OK_DELETE);
	ExecLocal("DELETE FROM pgp_metadata.ddl_history WHERE group_id = $1", 1, types,
			  values, SPI_OK_DELETE);
	PaxosCopyReplicatedTables(conn, group_id, display, true);

	/* last, the cursors and the start of the log */
	values[1] = Int64GetDatum(point->applied);
	values[2] = Int64GetDatum(config_round);
	values[3] = Int64GetDatum(point->log_start);
	ExecLocal("UPDATE pgp_metadata.\"group\" SET last_applied_round = $2,"
			  " config_round = greatest(config_round, $3), compacted_below = $4"
			  " WHERE group_id = $1", 4, types, values, SPI_OK_UPDATE);
	return true;
}

/*
 * EmptyTables deletes the rows of the group's tables, this node's and the
 * peer's (see the file header for why DELETE).
 */
static void
EmptyTables(PGconn *conn, const char *group_id, const char *display)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	List	   *tables = NIL;
	ListCell   *lc;
	PGresult   *res;
	uint64		i;

	values[0] = CStringGetTextDatum(group_id);
	if (SPI_execute_with_args("SELECT table_oid::regclass::text FROM pgp_metadata.replicated_tables"
							  " WHERE group_id = $1 ORDER BY table_oid",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not list the tables of group \"%s\"", group_id);
	for (i = 0; i < SPI_processed; i++)
		tables = lappend(tables, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	res = PaxosRemoteQuery(conn, "SELECT table_oid::text FROM pgp_metadata.replicated_tables"
						   " WHERE group_id = $1", group_id, display);
	for (i = 0; i < (uint64) PQntuples(res); i++)
	{
		char	   *name = pstrdup(PQgetvalue(res, i, 0));

		/* one this node does not replicate yet may not exist: copying says so */
		if (OidIsValid(RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(name)),
										NoLock, true)))
			tables = lappend(tables, name);
	}
	PQclear(res);
	PaxosNoteCopying(group_id, true);	/* waiting writers give way */
	foreach(lc, tables)
	{
		/*
		 * Writers wait for the copy, and then see it: an UPDATE that took
		 * its snapshot before the DELETE committed would find its row
		 * deleted and silently update nothing.  Readers go on.
		 */
		if (SPI_execute(psprintf("LOCK TABLE %s IN EXCLUSIVE MODE", (char *) lfirst(lc)),
						false, 0) != SPI_OK_UTILITY ||
			SPI_execute(psprintf("DELETE FROM %s", (char *) lfirst(lc)), false, 0) != SPI_OK_DELETE)
			elog(ERROR, "pg_paxos: could not empty %s", (char *) lfirst(lc));
	}
}

/* LocallyCommitted: do this node's tables hold the transaction already? */
static bool
LocallyCommitted(const char *group_id, const char *txn_id)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(txn_id);
	if (SPI_execute_with_args("SELECT 1 FROM pgp_metadata.local_commit"
							  " WHERE group_id = $1 AND txn_id = $2",
							  2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not look up transaction %s", txn_id);
	return SPI_processed > 0;
}

/*
 * ReplayPeerDdl runs here, in log order, the DDL the peer applied after
 * round `applied` (this node's tables stand there): its rounds may be
 * compacted, but the peer keeps the statements (pgp_metadata.ddl_history).
 * They run as the applier runs them, and are skipped, as the applier
 * skips them, for a transaction of this node that committed here.
 */
static void
ReplayPeerDdl(PGconn *conn, const char *group_id, const char *display, int64 applied)
{
	PGresult   *res;
	bool		save_applying = PaxosApplying;
	volatile int replayed = 0;
	int			i;

	res = PaxosRemoteQuery(conn, psprintf("SELECT round_num, statement, txn_id FROM pgp_metadata.ddl_history"
										  " WHERE group_id = $1 AND round_num > " INT64_FORMAT
										  " ORDER BY round_num, entry_index, change_index",
										  applied), group_id, display);
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		return;
	}
	(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	PaxosApplying = true;
	PG_TRY();
	{
		for (i = 0; i < PQntuples(res); i++)
		{
			/* a transaction of this node whose local commit ran it already */
			if (!PQgetisnull(res, i, 2) && LocallyCommitted(group_id, PQgetvalue(res, i, 2)))
				continue;
			if (SPI_execute(PQgetvalue(res, i, 1), false, 0) < 0)
				elog(ERROR, "pg_paxos: could not replay the DDL of round %s: %s",
					 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
			PaxosForgetDroppedTables();
			replayed++;
		}
		ereport(LOG,
				(errmsg("pg_paxos: replayed %d DDL statements of paxos group \"%s\" from node \"%s\" before copying its tables",
						replayed, group_id, display)));
	}
	PG_FINALLY();
	{
		PaxosApplying = save_applying;
		PQclear(res);
	}
	PG_END_TRY();
}

/* ExecLocal runs one statement through SPI and checks its result code. */
static void
ExecLocal(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) != expected)
		elog(ERROR, "pg_paxos: \"%s\" failed", sql);
}

/*
 * LearnPeerRounds learns here every round the peer knows as decided from
 * from_round on; returns the highest of them (from_round - 1 if none).
 */
static int64
LearnPeerRounds(PGconn *conn, const char *group_id, const char *display,
				int64 from_round)
{
	PGresult   *res;
	volatile int64 last = from_round - 1;
	int			i;

	res = PaxosRemoteQuery(conn,
						   psprintf("SELECT round_num, accepted_proposal_num, accepted_proposer_id,"
									" value_id, value FROM pgp_metadata.round"
									" WHERE group_id = $1 AND consensus AND round_num >= " INT64_FORMAT
									" ORDER BY round_num", from_round),
						   group_id, display);
	PG_TRY();
	{
		for (i = 0; i < PQntuples(res); i++)
		{
			px_ballot	ballot;
			px_value	value;

			last = strtoi64(PQgetvalue(res, i, 0), NULL, 10);
			px_ballot_set(&ballot, strtoi64(PQgetvalue(res, i, 1), NULL, 10),
						  PQgetvalue(res, i, 2));
			value.id = PQgetvalue(res, i, 3);
			value.data = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
			(void) RoundStoreLearn(group_id, last, &ballot, value);
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return last;
}

/*
 * ReapplyOwnMembership applies again the membership changes this node
 * knows as chosen above the rounds the peer had decided: the peer's host
 * table, copied over ours, does not have them yet.
 */
static void
ReapplyOwnMembership(const char *group_id, int64 above)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	List	   *changes = NIL;
	ListCell   *lc;
	uint64		i;

	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(above);
	if (SPI_execute_with_args("SELECT round_num::text, value_id, value FROM pgp_metadata.round"
							  " WHERE group_id = $1 AND consensus AND round_num > $2"
							  " AND (value_id LIKE 'pg_paxos:add\\_host:%'"
							  " OR value_id LIKE 'pg_paxos:remove\\_host:%')"
							  " ORDER BY round_num", 2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: could not read the membership changes of group \"%s\"", group_id);
	for (i = 0; i < SPI_processed; i++)
	{
		char	  **row = palloc(sizeof(char *) * 3);
		int			c;

		for (c = 0; c < 3; c++)
			row[c] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);
		changes = lappend(changes, row);
	}
	foreach(lc, changes)
	{
		char	  **row = (char **) lfirst(lc);
		px_value	value;

		value.id = row[1];
		value.data = row[2];
		MembershipApplyChosen(group_id, strtoi64(row[0], NULL, 10), value);
	}
}
