/*
 * request_parse.h
 *    Parsing of everything a client sends to paxosd: the middleware's JSON
 *    transactions, the web client's r(1)w(2=30) text, and the small JSON
 *    bodies of the admin endpoints.
 *
 * Pure functions over a byte buffer: no HTTP, no libpq, no global state, so
 * that the fuzzer (agent/fuzz/) links this file alone.  Every function
 * either fills its output completely and returns 0, or returns -1 with a
 * message for the client in err; it never reads past len.
 */
#ifndef PAXOSD_REQUEST_PARSE_H
#define PAXOSD_REQUEST_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* most accounts one transaction may read, and may write */
#define RQ_MAX_SET 1000

typedef struct rq_write
{
	int32_t account;
	int32_t balance;
} rq_write;

/* A transaction: accounts read, accounts written, and the time (ns) at
 * which its reads were made, against which the commit validates them. */
typedef struct rq_txn
{
	int nreads;
	int32_t reads[RQ_MAX_SET];
	int nwrites;
	rq_write writes[RQ_MAX_SET];
	int has_time_stamp;
	int64_t time_stamp;
} rq_txn;

/* POST /read/ : {"transaction": {"read_set": [1, 2], "write_set": {}}} */
int rq_parse_read(const char *body, size_t len, rq_txn *txn, char *err,
				  size_t errlen);

/* POST /commit/ : {"transaction": {"read_set": [..], "write_set": {"1":
 * 100}, "time_stamp": <ns>}}; time_stamp may be left out (no validation) */
int rq_parse_commit(const char *body, size_t len, rq_txn *txn, char *err,
					size_t errlen);

/* The web client's syntax: r(1)w(2=30), operations optionally separated by
 * blanks, commas or semicolons.  Reads are listed in txn->reads, writes in
 * txn->writes (a later write of the same account replaces an earlier one). */
int rq_parse_txn_text(const char *text, size_t len, rq_txn *txn, char *err,
					  size_t errlen);

/* POST /api/transaction : {"text": "r(1)w(2=30)"} */
int rq_parse_txn_text_request(const char *body, size_t len, rq_txn *txn,
							  char *err, size_t errlen);

/* POST /api/admin/switchover : {"target_node_id": N}, N in 1..max_node */
int rq_parse_switchover(const char *body, size_t len, int *target,
						int max_node, char *err, size_t errlen);

#endif
