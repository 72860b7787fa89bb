/*
 * db.h
 *    libpq connections of the agent: a small pool to its own PostgreSQL
 *    for request threads, and one-off connections to any node.
 */
#ifndef PAXOSD_DB_H
#define PAXOSD_DB_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"

/* db_init remembers the local connection string; call once. */
void db_init(const cfg_config *cfg);

/* db_get returns a pooled connection to the local server, or NULL with a
 * message in err.  Give it back with db_put; broken = 1 closes it. */
PGconn *db_get(char *err, size_t errlen);
void db_put(PGconn *conn, int broken);

/* db_close_all drops every idle pooled connection (the server went down). */
void db_close_all(void);

/* db_connect_node opens a connection of the caller's own to a node, giving
 * up after timeout_s seconds. */
PGconn *db_connect_node(const cfg_node *node, int timeout_s, char *err,
						size_t errlen);

/* db_exec runs one parameterised statement (text parameters); returns the
 * result (caller clears) or NULL with the error in err and, if sqlstate is
 * not NULL, its SQLSTATE (6 bytes) there. */
PGresult *db_exec(PGconn *conn, const char *sql, int nparams,
				  const char *const *params, char *err, size_t errlen,
				  char *sqlstate);

/* db_function_exists: whether the SQL function (regprocedure text, e.g.
 * "paxos_node_status()") exists on that server. */
int db_function_exists(PGconn *conn, const char *signature);

#endif
