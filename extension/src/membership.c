/*
 * membership.c
 *    Paxos groups and their members: reading pgp_metadata.group and .host,
 *    applying membership changes chosen in the log, and the SQL functions
 *    paxos_create_group, paxos_join_group and paxos_leave_group.
 *
 * A membership change is a log entry whose value id starts with
 * PAXOS_ADD_HOST_PREFIX or PAXOS_REMOVE_HOST_PREFIX and whose value is the
 * host's connection string.  Chosen in round c, it takes effect from round
 * c + 1, on every node at the moment the node learns it.  Changes add or
 * remove one host at a time, so a majority of the old membership and one of
 * the new always share a node; before a change returns, a majority of the
 * new membership knows it, and acceptors report the membership they know in
 * every promise, so a proposer two changes behind is stopped (proposer.c).
 *
 * Lookups expect the caller to be connected to SPI.  Messages raised here
 * hide the statement (errhidestmt): its connection strings may carry
 * passwords, which must never reach the server log.
 */
#include "pg_paxos.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(paxos_create_group);
PG_FUNCTION_INFO_V1(paxos_join_group);
PG_FUNCTION_INFO_V1(paxos_leave_group);

static void CheckGroupName(const char *group_id);
static void CheckConnstr(const char *connstr, const char *argname);
static void CheckConnstrReachesSelf(const char *connstr, const char *argname);
static void ExecOrError(const char *sql, int nargs, Oid *types, Datum *values,
						const char *nulls, int expected);
static void CopyGroupFromPeer(const char *group_id, const char *existing,
							  const char *own);
static void CopyGroupRows(PGconn *conn, const char *group_id, const char *display,
						  const char *own);
static void DeleteGroupLocally(const char *group_id);

/*
 * GroupLoad reads a group's row; false if this node has no such group.
 *
 * It is read on every statement, every acceptor call and every apply, so
 * it is fetched through the primary key directly, not through SPI, but
 * with what SPI would use: a new command and a fresh snapshot, so that a
 * row this transaction or one committed before just wrote is seen.
 */
bool
GroupLoad(const char *group_id, GroupInfo *group)
{
	Oid			nsp = get_namespace_oid("pgp_metadata", false);
	Oid			relid = get_relname_relid("group", nsp);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	Snapshot	snapshot;
	HeapTuple	tuple;
	bool		found = false;

	if (!OidIsValid(relid))
		elog(ERROR, "pg_paxos: table pgp_metadata.\"group\" is missing");
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(group_id));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true, snapshot, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		int			i;

		found = true;
		memset(group, 0, sizeof(*group));
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			const char *name = NameStr(att->attname);
			bool		isnull;
			Datum		d;

			if (att->attisdropped)
				continue;
			d = heap_getattr(tuple, i + 1, desc, &isnull);
			if (isnull)
				continue;
			if (strcmp(name, "group_id") == 0)
				group->group_id = TextDatumGetCString(d);
			else if (strcmp(name, "own_connection_string") == 0)
				group->own_connection_string = TextDatumGetCString(d);
			else if (strcmp(name, "last_applied_round") == 0)
				group->last_applied_round = DatumGetInt64(d);
			else if (strcmp(name, "config_round") == 0)
				group->config_round = DatumGetInt64(d);
			else if (strcmp(name, "compacted_below") == 0)
				group->compacted_below = DatumGetInt64(d);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snapshot);
	return found;
}

/* GroupLoadOrError is GroupLoad for a group that must exist. */
void
GroupLoadOrError(const char *group_id, GroupInfo *group)
{
	if (!GroupLoad(group_id, group))
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("paxos group \"%s\" does not exist on this node", group_id),
				 errhint("Create it with paxos_create_group or join it with paxos_join_group.")));
}

/*
 * PaxosCheckNotCompacted refuses to act on a round this node has compacted
 * away: it was chosen and applied by every member, and an acceptor that no
 * longer has its state must never take part in it again, or a second value
 * could be chosen there.
 */
void
PaxosCheckNotCompacted(const GroupInfo *group, int64 round)
{
	if (round < group->compacted_below)
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("round " INT64_FORMAT " of paxos group \"%s\" is compacted on this node",
						round, group->group_id),
				 errdetail("The log here starts at round " INT64_FORMAT "; every member had applied the rounds before it.",
						   group->compacted_below),
				 errhint("A node that still needs them copies a snapshot of the group from a peer (its background worker does so by itself).")));
}

/* GroupHostsForRound lists the connection strings of the members of a round. */
List *
GroupHostsForRound(const char *group_id, int64 round)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	List	   *hosts = NIL;
	uint64		i;
	int			rc;

	if (plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT8OID};

		plan = SPI_prepare("SELECT DISTINCT connection_string FROM pgp_metadata.host"
						   " WHERE group_id = $1 AND min_round_num <= $2"
						   " AND (max_round_num IS NULL OR $2 <= max_round_num)"
						   " ORDER BY connection_string", 2, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "pg_paxos: could not prepare host lookup");
	}
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(round);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_paxos: host lookup failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
		hosts = lappend(hosts, SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1));
	return hosts;
}

/* MembershipIsChange tells whether a log value is a membership change. */
bool
MembershipIsChange(px_value value)
{
	return value.id != NULL &&
		(strncmp(value.id, PAXOS_ADD_HOST_PREFIX, strlen(PAXOS_ADD_HOST_PREFIX)) == 0 ||
		 strncmp(value.id, PAXOS_REMOVE_HOST_PREFIX, strlen(PAXOS_REMOVE_HOST_PREFIX)) == 0);
}

/* ExecOrError runs one statement through SPI and checks its result code. */
static void
ExecOrError(const char *sql, int nargs, Oid *types, Datum *values,
			const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "pg_paxos: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
}

/*
 * MembershipApplyChosen makes a membership change chosen in `round` take
 * effect from round + 1 on this node.  Applying it twice changes nothing.
 */
void
MembershipApplyChosen(const char *group_id, int64 round, px_value value)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];

	if (value.data == NULL)
		elog(ERROR, "pg_paxos: membership change without a connection string");

	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(value.data);
	values[2] = Int64GetDatum(round);
	if (strncmp(value.id, PAXOS_ADD_HOST_PREFIX, strlen(PAXOS_ADD_HOST_PREFIX)) == 0)
	{
		values[2] = Int64GetDatum(round + 1);
		ExecOrError("INSERT INTO pgp_metadata.host (group_id, connection_string, min_round_num)"
					" VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
					3, types, values, NULL, SPI_OK_INSERT);
	}
	else
		ExecOrError("UPDATE pgp_metadata.host SET max_round_num = $3"
					" WHERE group_id = $1 AND connection_string = $2"
					" AND max_round_num IS NULL AND min_round_num <= $3",
					3, types, values, NULL, SPI_OK_UPDATE);

	types[1] = INT8OID;
	values[1] = Int64GetDatum(round);
	ExecOrError("UPDATE pgp_metadata.\"group\" SET config_round = greatest(config_round, $2)"
				" WHERE group_id = $1", 2, types, values, NULL, SPI_OK_UPDATE);
	ereport(LOG,
			(errmsg("pg_paxos: group \"%s\" membership change in round " INT64_FORMAT ": %s %s",
					group_id, round,
					value.id[strlen(PAXOS_INTERNAL_PREFIX)] == 'a' ? "added" : "removed",
					PaxosConnstrForDisplay(value.data)),
			 errhidestmt(true)));	/* the statement may carry a password */
}

/*
 * PaxosConnectOrError opens a plain (blocking) libpq connection for a one-off
 * conversation, or raises `message` with libpq's reason and `hint`.
 */
PGconn *
PaxosConnectOrError(const char *connstr, const char *message, const char *hint)
{
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {psprintf("%d", Max(2, PaxosRpcTimeoutMs / 1000)),
	"pg_paxos", connstr, NULL};
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);	/* connstr may be a URI */

	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = PaxosTrimMessage(PQerrorMessage(conn));

		PQfinish(conn);
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", message),
				 errdetail("%s", msg),
				 errhint("%s", hint)));
	}
	return conn;
}

/* CheckGroupName refuses empty group names. */
static void
CheckGroupName(const char *group_id)
{
	if (group_id[0] == '\0')
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("current_group_id must not be empty")));
}

/* CheckConnstr refuses connection strings libpq cannot parse. */
static void
CheckConnstr(const char *connstr, const char *argname)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(connstr, &err);

	if (opts == NULL)
	{
		char	   *msg = PaxosTrimMessage(err ? err : "out of memory");

		if (err)
			PQfreemem(err);
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a valid connection string: %s", argname, msg),
				 errhint("Use libpq's key=value form, e.g. 'host=10.0.0.1 port=5432'.")));
	}
	PQconninfoFree(opts);
}

/*
 * CheckConnstrReachesSelf makes sure a node's own connection string leads
 * back to this very server: other nodes will use it to reach us, and a
 * wrong one would silently make a group of the wrong servers.
 */
static void
CheckConnstrReachesSelf(const char *connstr, const char *argname)
{
	PGconn	   *conn;
	PGresult   *res;
	char	   *remote_id;
	char	   *local_id;
	int			ret;

	conn = PaxosConnectOrError(connstr,
						  psprintf("could not connect to this node through %s \"%s\"",
								   argname, PaxosConnstrForDisplay(connstr)),
						  "Other nodes use this connection string to reach this node: it must work from every node.");
	res = PQexec(conn, PeerStatementSql(RPC_IDENTITY));
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		char	   *msg = PaxosTrimMessage(PQerrorMessage(conn));

		PQclear(res);
		PQfinish(conn);
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not identify the server behind %s", argname),
				 errdetail("%s", msg)));
	}
	remote_id = pstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);

	ret = SPI_execute(PeerStatementSql(RPC_IDENTITY), true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_paxos: identity query failed");
	local_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(remote_id, local_id) != 0)
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" reaches another server, not this one",
						argname, PaxosConnstrForDisplay(connstr)),
				 errhint("Pass the address under which the other nodes reach this node.")));
}

/*
 * paxos_create_group creates a group whose only member is this node.  Round
 * 0 of its log is the founder's membership entry, decided by definition.
 */
Datum
paxos_create_group(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	char	   *connstr = PaxosTextArg(fcinfo, 1, "founder_connection_string");
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	GroupInfo	existing;
	px_ballot	ballot;
	px_value	founder;

	CheckGroupName(group_id);
	CheckConnstr(connstr, "founder_connection_string");

	SPI_connect();
	if (GroupLoad(group_id, &existing))
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("paxos group \"%s\" already exists on this node", group_id)));
	CheckConnstrReachesSelf(connstr, "founder_connection_string");
	PaxosForgetProgress(group_id);	/* of a group of that name dropped before */

	values[0] = CStringGetTextDatum(group_id);
	values[1] = CStringGetTextDatum(connstr);
	ExecOrError("INSERT INTO pgp_metadata.\"group\" (group_id, last_applied_round,"
				" own_connection_string, config_round) VALUES ($1, 0, $2, 0)",
				2, types, values, NULL, SPI_OK_INSERT);

	px_ballot_set(&ballot, 0, "pg_paxos");
	founder.id = PAXOS_ADD_HOST_PREFIX "founder";
	founder.data = connstr;
	RoundStoreLearn(group_id, 0, &ballot, founder);
	SPI_finish();

	PG_RETURN_VOID();
}

/*
 * PaxosRemoteQuery runs one query on a plain libpq connection and returns its
 * tuples, or raises the remote error.  The caller owns the connection and
 * closes it in PG_CATCH too (see CopyGroupFromPeer).
 */
PGresult *
PaxosRemoteQuery(PGconn *conn, const char *sql, const char *param, const char *display)
{
	const char *params[1] = {param};
	PGresult   *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, params,
								   NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);

	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
	{
		char	   *msg = PaxosTrimMessage(PQresultErrorMessage(res));

		PQclear(res);
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("query on another node failed: %s", msg),
				 errdetail("The node is \"%s\".", display)));
	}
	return res;
}

/*
 * PaxosInPeerSnapshot runs work(conn, arg) inside one REPEATABLE READ, read
 * only transaction on a peer, so that everything it reads there is one
 * consistent snapshot; the connection is closed afterwards, whatever
 * happens.
 */
void
PaxosInPeerSnapshot(PGconn *conn, const char *display,
					void (*work) (PGconn *conn, void *arg), void *arg)
{
	PG_TRY();
	{
		PQclear(PaxosRemoteQuery(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
								 NULL, display));
		work(conn, arg);
		PQclear(PaxosRemoteQuery(conn, "COMMIT", NULL, display));
	}
	PG_CATCH();
	{
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PQfinish(conn);
}

/*
 * PaxosPeerGroupRow reads a group's row on a peer: last_applied_round,
 * config_round, compacted_below; an error if the peer has no such group.
 */
PGresult *
PaxosPeerGroupRow(PGconn *conn, const char *group_id, const char *display,
				  const char *hint)
{
	PGresult   *res = PaxosRemoteQuery(conn, "SELECT last_applied_round, config_round, compacted_below"
									   " FROM pgp_metadata.\"group\" WHERE group_id = $1",
									   group_id, display);

	if (PQntuples(res) != 1)
	{
		PQclear(res);
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("paxos group \"%s\" does not exist on the existing node", group_id),
				 errdetail("The node is \"%s\".", display),
				 hint ? errhint("%s", hint) : 0));
	}
	return res;
}

typedef struct JoinCopy
{
	const char *group_id;
	const char *display;
	const char *own;
} JoinCopy;

/* JoinCopyWork: CopyGroupRows in the peer's transaction. */
static void
JoinCopyWork(PGconn *conn, void *arg)
{
	JoinCopy   *jc = (JoinCopy *) arg;

	CopyGroupRows(conn, jc->group_id, jc->display, jc->own);
}

/*
 * CopyGroupFromPeer copies, from one consistent snapshot of an existing
 * member, the group's metadata and every decided round of its log.  The
 * joining node is not a member of any of those rounds, so it copies no
 * acceptor state, only what is chosen.
 */
static void
CopyGroupFromPeer(const char *group_id, const char *existing, const char *own)
{
	char	   *display = PaxosConnstrForDisplay(existing);
	PGconn	   *conn;

	conn = PaxosConnectOrError(existing,
							   psprintf("could not connect to the existing node \"%s\"", display),
							   "Pass the connection string of a current member of the group.");
	{
		JoinCopy	jc = {group_id, display, own};

		PaxosInPeerSnapshot(conn, display, JoinCopyWork, &jc);
	}
}

/* CopyGroupRows is CopyGroupFromPeer's work, in the peer's transaction. */
static void
CopyGroupRows(PGconn *conn, const char *group_id, const char *display, const char *own)
{
	PGresult   *res;
	int			i;
	Oid			types[7] = {TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7];

	/* rounds are written here directly: what shared memory knew is void */
	PaxosForgetProgress(group_id);

	res = PaxosPeerGroupRow(conn, group_id, display,
							"Pass the connection string of a current member of the group.");
	values[0] = CStringGetTextDatum(group_id);
	values[1] = Int64GetDatum(strtoi64(PQgetvalue(res, 0, 0), NULL, 10));
	values[2] = Int64GetDatum(strtoi64(PQgetvalue(res, 0, 1), NULL, 10));
	values[3] = CStringGetTextDatum(own);
	values[4] = Int64GetDatum(strtoi64(PQgetvalue(res, 0, 2), NULL, 10));
	PQclear(res);
	{
		Oid			gtypes[5] = {TEXTOID, INT8OID, INT8OID, TEXTOID, INT8OID};

		/* the log starts where the existing member's does */
		ExecOrError("INSERT INTO pgp_metadata.\"group\" (group_id, last_applied_round,"
					" config_round, own_connection_string, compacted_below)"
					" VALUES ($1, $2, $3, $4, $5)",
					5, gtypes, values, NULL, SPI_OK_INSERT);
	}

	res = PaxosRemoteQuery(conn, "SELECT connection_string, min_round_num, max_round_num"
					  " FROM pgp_metadata.host WHERE group_id = $1", group_id, display);
	for (i = 0; i < PQntuples(res); i++)
	{
		Oid			htypes[4] = {TEXTOID, TEXTOID, INT8OID, INT8OID};

		memset(nulls, ' ', sizeof(nulls));
		values[1] = CStringGetTextDatum(PQgetvalue(res, i, 0));
		values[2] = Int64GetDatum(strtoi64(PQgetvalue(res, i, 1), NULL, 10));
		if (PQgetisnull(res, i, 2))
			nulls[3] = 'n';
		else
			values[3] = Int64GetDatum(strtoi64(PQgetvalue(res, i, 2), NULL, 10));
		ExecOrError("INSERT INTO pgp_metadata.host (group_id, connection_string,"
					" min_round_num, max_round_num) VALUES ($1, $2, $3, $4)",
					4, htypes, values, nulls, SPI_OK_INSERT);
	}
	PQclear(res);

	res = PaxosRemoteQuery(conn, "SELECT round_num, accepted_proposal_num, accepted_proposer_id,"
					  " value_id, value FROM pgp_metadata.round"
					  " WHERE group_id = $1 AND consensus ORDER BY round_num",
					  group_id, display);
	for (i = 0; i < PQntuples(res); i++)
	{
		int			c;

		memset(nulls, ' ', sizeof(nulls));
		values[1] = Int64GetDatum(strtoi64(PQgetvalue(res, i, 0), NULL, 10));
		values[2] = Int64GetDatum(strtoi64(PQgetvalue(res, i, 1), NULL, 10));
		for (c = 2; c < 5; c++)
		{
			if (PQgetisnull(res, i, c))
				nulls[c + 1] = 'n';
			else
				values[c + 1] = CStringGetTextDatum(PQgetvalue(res, i, c));
		}
		ExecOrError("INSERT INTO pgp_metadata.round (group_id, round_num, min_proposal_num,"
					" proposer_id, accepted_proposal_num, accepted_proposer_id, value_id,"
					" value, consensus) VALUES ($1, $2, $3, $4, $3, $4, $5, $6, true)",
					6, types, values, nulls, SPI_OK_INSERT);
	}
	PQclear(res);
	PaxosCopyReplicatedTables(conn, group_id, display, false);
}

/*
 * paxos_join_group makes this node a member of an existing group: copy the
 * group's metadata and log from an existing member, then get the change
 * "add this host" chosen in the log.  From the round after it, this node
 * takes part in every decision.
 */
Datum
paxos_join_group(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	char	   *existing = PaxosTextArg(fcinfo, 1, "existing_connection_string");
	char	   *own = PaxosTextArg(fcinfo, 2, "own_connection_string");
	char	   *value_id;
	GroupInfo	group;
	int64		round;

	CheckGroupName(group_id);
	CheckConnstr(existing, "existing_connection_string");
	CheckConnstr(own, "own_connection_string");

	SPI_connect();
	if (GroupLoad(group_id, &group))
		ereport(ERROR,
				(errhidestmt(true),
				 errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("this node is already a member of paxos group \"%s\"", group_id),
				 errhint("Call paxos_leave_group first to join it again.")));
	CheckConnstrReachesSelf(own, "own_connection_string");
	CopyGroupFromPeer(group_id, existing, own);

	value_id = psprintf(PAXOS_ADD_HOST_PREFIX "%016llx",
						(unsigned long long) pg_prng_uint64(&pg_global_prng_state));
	round = PaxosAppendValue(group_id, value_id, own);

	/* learn everything up to the change, the change itself included */
	PaxosLearnLog(group_id, -1, round);
	SPI_finish();

	ereport(NOTICE,
			(errmsg("joined paxos group \"%s\" in round " INT64_FORMAT, group_id, round)));
	PG_RETURN_VOID();
}

/* DeleteGroupLocally removes every trace of a group from this node. */
static void
DeleteGroupLocally(const char *group_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(group_id);
	PaxosForgetProgress(group_id);
	ExecOrError("DELETE FROM pgp_metadata.replicated_tables WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
	ExecOrError("DELETE FROM pgp_metadata.round WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
	ExecOrError("DELETE FROM pgp_metadata.standing_promise WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
	ExecOrError("DELETE FROM pgp_metadata.ddl_history WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
	ExecOrError("DELETE FROM pgp_metadata.host WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
	ExecOrError("DELETE FROM pgp_metadata.\"group\" WHERE group_id = $1",
				1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * paxos_leave_group removes this node from a group through the log, then
 * forgets the group locally.  Replicated tables keep their final contents.
 */
Datum
paxos_leave_group(PG_FUNCTION_ARGS)
{
	char	   *group_id = PaxosTextArg(fcinfo, 0, "current_group_id");
	GroupInfo	group;
	List	   *hosts;
	int64		next_round;

	SPI_connect();
	GroupLoadOrError(group_id, &group);
	next_round = RoundStoreMaxRound(group_id, false) + 1;
	hosts = GroupHostsForRound(group_id, next_round);

	if (list_length(hosts) > 1 || (list_length(hosts) == 1 &&
								   strcmp(linitial(hosts), group.own_connection_string) != 0))
	{
		char	   *value_id = psprintf(PAXOS_REMOVE_HOST_PREFIX "%016llx",
										(unsigned long long) pg_prng_uint64(&pg_global_prng_state));

		/* returns once a majority of the remaining members knows the change */
		(void) PaxosAppendValue(group_id, value_id, group.own_connection_string);
	}
	DeleteGroupLocally(group_id);
	SPI_finish();

	PG_RETURN_VOID();
}
