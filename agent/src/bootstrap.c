/*
 * bootstrap.c
 *    Make the node a working member: pg_paxos created, bank_balance present
 *    and replicated, the node in the group.
 *
 * Every step checks first and only then acts, so bootstrapping again after
 * a restart (or over a directory made by scripts/demo.sh) changes nothing.
 * Who creates the group: the lowest configured node id, and only when no
 * other member already has the group.  Others join through any member that
 * has it, in node-id order (pg_paxos wants membership changes one after the
 * other), waiting a while for lower ids before joining anyway.
 * bank_balance is replicated by the founder right after creating the group;
 * joining copies it (and its rows) from the member joined through.
 */
#include "bootstrap.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

#define JOIN_ORDER_WAIT_S 30

static const char *create_table_sql =
	"CREATE TABLE public.bank_balance (account_number int PRIMARY KEY, "
	"balance int NOT NULL, created_at bigint, updated_at bigint)";

/* exec_simple runs one statement and forgets its result. */
static int
exec_simple(PGconn *conn, const char *sql, int n, const char *const *params,
			char *err, size_t errlen)
{
	PGresult *res = db_exec(conn, sql, n, params, err, errlen, NULL);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* query_bool runs a statement answering one boolean; -1 on error. */
static int
query_bool(PGconn *conn, const char *sql, int n, const char *const *params,
		   char *err, size_t errlen)
{
	PGresult *res = db_exec(conn, sql, n, params, err, errlen, NULL);
	int v;

	if (res == NULL)
		return -1;
	v = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return v;
}

static int
has_group(PGconn *conn, const char *group, char *err, size_t errlen)
{
	const char *p[1] = {group};

	return query_bool(conn,
					  "SELECT EXISTS (SELECT 1 FROM pgp_metadata.\"group\" "
					  "WHERE group_id = $1)",
					  1, p, err, errlen);
}

/* is_member: whether connstr is a current member of group on conn. */
static int
is_member(PGconn *conn, const char *group, const char *connstr)
{
	const char *p[2] = {group, connstr};
	char err[256];

	return query_bool(conn,
					  "SELECT EXISTS (SELECT 1 FROM pgp_metadata.host WHERE "
					  "group_id = $1 AND connection_string = $2 AND "
					  "max_round_num IS NULL)",
					  2, p, err, sizeof(err)) == 1;
}

/*
 * find_member returns a connection to a configured node (not this one)
 * whose server has the group, and its entry in *found; NULL if none.
 */
static PGconn *
find_member(const cfg_config *cfg, const cfg_node **found)
{
	int i;

	for (i = 0; i < cfg->nnodes; i++)
	{
		const cfg_node *n = &cfg->nodes[i];
		char err[512];
		PGconn *conn;

		if (n->id == cfg->node_id)
			continue;
		if ((conn = db_connect_node(n, 2, err, sizeof(err))) == NULL)
			continue;
		if (has_group(conn, cfg->group, err, sizeof(err)) == 1)
		{
			*found = n;
			return conn;
		}
		PQfinish(conn);
	}
	return NULL;
}

static int
lowest_id(const cfg_config *cfg)
{
	int i, low = cfg->node_id;

	for (i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i].id < low)
			low = cfg->nodes[i].id;
	return low;
}

/* lower_ids_joined: whether every configured node with a smaller id than
 * ours is a member already (as the member on conn knows it). */
static int
lower_ids_joined(const cfg_config *cfg, PGconn *member)
{
	int i;

	for (i = 0; i < cfg->nnodes; i++)
	{
		char connstr[300];

		if (cfg->nodes[i].id >= cfg->node_id)
			continue;
		cfg_connstr(&cfg->nodes[i], connstr, sizeof(connstr));
		if (!is_member(member, cfg->group, connstr))
			return 0;
	}
	return 1;
}

/* peer_replicates: whether the member on conn replicates bank_balance. */
static int
peer_replicates(PGconn *conn, const cfg_config *cfg)
{
	const char *p[1] = {cfg->group};
	char err[256];

	return query_bool(conn,
					  "SELECT EXISTS (SELECT 1 FROM "
					  "pgp_metadata.replicated_tables WHERE table_oid = "
					  "to_regclass('public.bank_balance') AND group_id = $1)",
					  1, p, err, sizeof(err)) == 1;
}

static int
create_group(PGconn *local, const cfg_config *cfg, char *err, size_t errlen)
{
	char own[300];
	const char *p[2] = {cfg->group, own};

	cfg_connstr(cfg_self(cfg), own, sizeof(own));
	if (exec_simple(local, "SELECT paxos_create_group($1, $2)", 2, p, err,
					errlen) != 0)
		return -1;
	fprintf(stderr, "paxosd: node %d: created group '%s'\n", cfg->node_id,
			cfg->group);
	return 0;
}

static int
join_group(PGconn *local, const cfg_config *cfg, const cfg_node *via,
		   char *err, size_t errlen)
{
	char own[300], existing[300];
	const char *p[3] = {cfg->group, existing, own};

	cfg_connstr(cfg_self(cfg), own, sizeof(own));
	cfg_connstr(via, existing, sizeof(existing));
	if (exec_simple(local, "SELECT paxos_join_group($1, $2, $3)", 3, p, err,
					errlen) != 0)
		return -1;
	fprintf(stderr, "paxosd: node %d: joined group '%s' through node %d\n",
			cfg->node_id, cfg->group, via->id);
	return 0;
}

/* ensure_replicated: paxos_replicate_table unless this node replicates
 * bank_balance already. */
static int
ensure_replicated(PGconn *local, const cfg_config *cfg, char *err,
				  size_t errlen)
{
	const char *p[1] = {cfg->group};
	int done = query_bool(local,
						  "SELECT EXISTS (SELECT 1 FROM "
						  "pgp_metadata.replicated_tables WHERE table_oid = "
						  "'public.bank_balance'::regclass AND group_id = $1)",
						  1, p, err, errlen);

	if (done != 0)
		return done < 0 ? -1 : 0;
	return exec_simple(local,
					   "SELECT paxos_replicate_table($1, "
					   "'public.bank_balance'::regclass)",
					   1, p, err, errlen);
}

/* wait_peers_have_table waits (up to JOIN_ORDER_WAIT_S) until every
 * other configured node that answers has bank_balance. */
static void
wait_peers_have_table(const cfg_config *cfg, volatile int *stop)
{
	time_t started = time(NULL);
	int i, missing = 1;

	while (missing && !*stop && time(NULL) - started < JOIN_ORDER_WAIT_S)
	{
		missing = 0;
		for (i = 0; i < cfg->nnodes; i++)
		{
			char err[512];
			PGconn *conn;

			if (cfg->nodes[i].id == cfg->node_id)
				continue;
			if ((conn = db_connect_node(&cfg->nodes[i], 2, err,
										sizeof(err))) == NULL)
				continue;
			if (query_bool(conn,
						   "SELECT to_regclass('public.bank_balance') IS NULL",
						   0, NULL, err, sizeof(err)) != 0)
				missing = 1;
			PQfinish(conn);
		}
		if (missing)
			sleep(1);
	}
}

int
boot_node(const cfg_config *cfg, volatile int *stop, char *err, size_t errlen)
{
	time_t started = time(NULL);
	PGconn *local = NULL;
	int rc = -1, member;

	for (;;)
	{
		const cfg_node *via = NULL;
		PGconn *peer;

		if (*stop)
			goto done;
		if (local == NULL)
		{
			if ((local = db_get(err, errlen)) == NULL)
				goto done;
			if (exec_simple(local, "SET client_min_messages = warning", 0,
							NULL, err, errlen) != 0 ||
				exec_simple(local, "CREATE EXTENSION IF NOT EXISTS pg_paxos",
							0, NULL, err, errlen) != 0)
				goto done;
			if (query_bool(local,
						   "SELECT to_regclass('public.bank_balance') IS NULL",
						   0, NULL, err, errlen) == 1 &&
				exec_simple(local, create_table_sql, 0, NULL, err, errlen) !=
					0)
				goto done;
		}
		if ((member = has_group(local, cfg->group, err, errlen)) < 0)
			goto done;
		if (member)
			break;
		peer = find_member(cfg, &via);
		if (peer == NULL && cfg->node_id == lowest_id(cfg))
		{
			if (create_group(local, cfg, err, errlen) != 0)
				goto done;
			continue;
		}
		if (peer != NULL)
		{
			/* joining copies bank_balance only once it is replicated */
			int ready = peer_replicates(peer, cfg) &&
						(lower_ids_joined(cfg, peer) ||
						 time(NULL) - started > JOIN_ORDER_WAIT_S);

			PQfinish(peer);
			if (ready)
			{
				if (join_group(local, cfg, via, err, errlen) != 0)
				{
					/* another node may have joined at the same moment */
					fprintf(stderr,
							"paxosd: node %d: join failed, retrying: %s\n",
							cfg->node_id, err);
					db_put(local, 1);
					local = NULL;
					sleep(1);
				}
				continue;
			}
		}
		sleep(1);
	}
	/* a fresh joiner copied the replication with the group; a node that
	 * was in the group before paxosd (scripts/demo.sh data) may not have
	 * it: then the lowest id replicates, once the others have the table */
	if (cfg->node_id == lowest_id(cfg))
	{
		wait_peers_have_table(cfg, stop);
		if (ensure_replicated(local, cfg, err, errlen) != 0)
			goto done;
	}
	rc = 0;
done:
	db_put(local, rc != 0);
	return rc;
}
