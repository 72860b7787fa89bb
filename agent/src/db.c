/*
 * db.c
 *    libpq for the agent.
 *
 * HTTP requests run on threads of their own; each borrows a connection to
 * the local server from a small pool (a mutex guards the pool; a connection
 * belongs to one thread at a time).  Connections that broke, and every idle
 * one when the server is taken down, are closed rather than reused.
 * Every statement is parameterised (PQexecParams): no client text is ever
 * spliced into SQL.
 */
#include "db.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define DB_POOL_SIZE 16

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static PGconn *pool[DB_POOL_SIZE];
static int pool_count;
static char local_conninfo[512];

void
db_init(const cfg_config *cfg)
{
	char base[300];

	cfg_connstr(cfg_self(cfg), base, sizeof(base));
	/* statement_timeout: no request thread waits forever on a stuck
	 * majority; pg_paxos itself fails faster (rpc_timeout) */
	snprintf(local_conninfo, sizeof(local_conninfo),
			 "%s connect_timeout=3 application_name=paxosd "
			 "options='-c statement_timeout=60000'",
			 base);
}

PGconn *
db_get(char *err, size_t errlen)
{
	PGconn *conn = NULL;

	pthread_mutex_lock(&pool_lock);
	if (pool_count > 0)
		conn = pool[--pool_count];
	pthread_mutex_unlock(&pool_lock);
	if (conn != NULL && PQstatus(conn) == CONNECTION_OK &&
		PQtransactionStatus(conn) == PQTRANS_IDLE)
		return conn;
	if (conn != NULL)
		PQfinish(conn);
	conn = PQconnectdb(local_conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		snprintf(err, errlen, "cannot connect to the local PostgreSQL: %s",
				 PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

void
db_put(PGconn *conn, int broken)
{
	if (conn == NULL)
		return;
	if (!broken && PQstatus(conn) == CONNECTION_OK &&
		PQtransactionStatus(conn) == PQTRANS_IDLE)
	{
		pthread_mutex_lock(&pool_lock);
		if (pool_count < DB_POOL_SIZE)
		{
			pool[pool_count++] = conn;
			conn = NULL;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	if (conn != NULL)
		PQfinish(conn);
}

void
db_close_all(void)
{
	pthread_mutex_lock(&pool_lock);
	while (pool_count > 0)
		PQfinish(pool[--pool_count]);
	pthread_mutex_unlock(&pool_lock);
}

PGconn *
db_connect_node(const cfg_node *node, int timeout_s, char *err, size_t errlen)
{
	char base[300], conninfo[512];
	PGconn *conn;

	cfg_connstr(node, base, sizeof(base));
	snprintf(conninfo, sizeof(conninfo),
			 "%s connect_timeout=%d application_name=paxosd "
			 "options='-c statement_timeout=%d'",
			 base, timeout_s, timeout_s * 1000);
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		snprintf(err, errlen, "node %d: %s", node->id, PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

PGresult *
db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
		char *err, size_t errlen, char *sqlstate)
{
	PGresult *res =
		PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (sqlstate != NULL)
		sqlstate[0] = '\0';
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	if (sqlstate != NULL && res != NULL &&
		PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL)
		snprintf(sqlstate, 6, "%s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
	snprintf(err, errlen, "%s", PQerrorMessage(conn));
	/* drop libpq's trailing newline */
	if (err[0] != '\0' && err[strlen(err) - 1] == '\n')
		err[strlen(err) - 1] = '\0';
	PQclear(res);
	return NULL;
}

int
db_function_exists(PGconn *conn, const char *signature)
{
	const char *params[1] = {signature};
	char err[256];
	PGresult *res = db_exec(conn, "SELECT to_regprocedure($1) IS NOT NULL", 1,
							params, err, sizeof(err), NULL);
	int exists;

	if (res == NULL)
		return 0;
	exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return exists;
}
