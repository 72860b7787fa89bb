/*
 * transaction.h
 *    Running a parsed transaction (rq_txn) on the local PostgreSQL: strong
 *    reads, and commits validated optimistically then certified by pg_paxos.
 */
#ifndef PAXOSD_TRANSACTION_H
#define PAXOSD_TRANSACTION_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "request_parse.h"

typedef enum tx_outcome
{
	TX_COMMIT,
	TX_ABORT,       /* validation or certification failed: retry */
	TX_UNAVAILABLE, /* the node or a majority is unreachable (503) */
	TX_ERROR        /* anything else (500) */
} tx_outcome;

/* tx_now_ns: the wall clock in nanoseconds, the unit of every timestamp */
long long tx_now_ns(void);

/* tx_read reads txn->reads (strong read) into *data as the middleware's
 * [[[account, balance], updated_at], ...] and the read's time into *ts. */
tx_outcome tx_read(PGconn *conn, const rq_txn *txn, json_t **data,
				   long long *ts, char *msg, size_t msglen);

/* tx_commit validates the reads against time_stamp, writes, commits.  msg
 * says why it aborted or failed. */
tx_outcome tx_commit(PGconn *conn, const rq_txn *txn, char *msg,
					 size_t msglen);

#endif
