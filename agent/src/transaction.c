/*
 * transaction.c
 *    The middleware's transaction model over a pg_paxos-replicated table.
 *
 * A commit runs in one SQL transaction on this node:
 *   1. optimistic validation: if an account of the read set has updated_at
 *      after the client's time_stamp, someone wrote it since the client
 *      read it: ABORT.  The SELECT is a strong read (pg_paxos applies every
 *      round decided before it), so it sees writes made through any node.
 *   2. the accounts read but not written get a no-op UPDATE: that puts
 *      their keys in the transaction's log entry, so that certification
 *      also fails it if another node writes them concurrently (between
 *      this validation and our round).  Read-only commits skip it.
 *   3. the writes, one INSERT .. ON CONFLICT (w(x=y) creates x if missing).
 *   4. COMMIT: pg_paxos certifies; SQLSTATE 40001 means ABORT.
 * A COMMIT acknowledged here is durable on a majority (pg_paxos answers
 * COMMIT only then); a connection lost during COMMIT is reported as
 * unavailable, never as COMMIT.
 */
#include "transaction.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"

long long
tx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* int_array writes n int4 values as a PostgreSQL array literal; the caller
 * frees it.  Only digits and '-' ever reach the text. */
static char *
int_array(const int32_t *vals, int n, size_t stride)
{
	char *buf = malloc((size_t) n * 12 + 3), *p;
	int i;

	if (buf == NULL)
		return NULL;
	p = buf;
	*p++ = '{';
	for (i = 0; i < n; i++)
	{
		const int32_t *v =
			(const int32_t *) ((const char *) vals + i * stride);

		p += sprintf(p, "%s%d", i ? "," : "", *v);
	}
	*p++ = '}';
	*p = '\0';
	return buf;
}

/* classify maps a failed statement to an outcome by SQLSTATE. */
static tx_outcome
classify(PGconn *conn, const char *sqlstate)
{
	if (PQstatus(conn) != CONNECTION_OK)
		return TX_UNAVAILABLE;
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0)
		return TX_ABORT;
	/* connection exceptions (a majority out of reach), shutdown, cancel */
	if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57", 2) == 0)
		return TX_UNAVAILABLE;
	return TX_ERROR;
}

tx_outcome
tx_read(PGconn *conn, const rq_txn *txn, json_t **data, long long *ts,
		char *msg, size_t msglen)
{
	char sqlstate[6];
	char *accounts = int_array(txn->reads, txn->nreads, sizeof(int32_t));
	const char *p[1] = {accounts};
	PGresult *res;
	int i;

	if (accounts == NULL)
	{
		snprintf(msg, msglen, "out of memory");
		return TX_ERROR;
	}
	/* taken before the read: a write stamped later may not be in it */
	*ts = tx_now_ns();
	res = db_exec(conn,
				  "SELECT account_number, balance, updated_at FROM "
				  "public.bank_balance WHERE account_number = ANY($1::int[]) "
				  "ORDER BY account_number",
				  1, p, msg, msglen, sqlstate);
	free(accounts);
	if (res == NULL)
		return classify(conn, sqlstate);
	*data = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(
			*data,
			json_pack("[[I, I], o]", (json_int_t) atoll(PQgetvalue(res, i, 0)),
					  (json_int_t) atoll(PQgetvalue(res, i, 1)),
					  PQgetisnull(res, i, 2)
						  ? json_null()
						  : json_integer(atoll(PQgetvalue(res, i, 2)))));
	PQclear(res);
	return TX_COMMIT;
}

/* step runs one statement of the commit; on failure rolls back. */
static tx_outcome
step(PGconn *conn, const char *sql, int n, const char *const *p,
	 PGresult **out, char *msg, size_t msglen)
{
	char sqlstate[6];
	PGresult *res = db_exec(conn, sql, n, p, msg, msglen, sqlstate);
	tx_outcome o;

	if (res != NULL)
	{
		if (out != NULL)
			*out = res;
		else
			PQclear(res);
		return TX_COMMIT;
	}
	o = classify(conn, sqlstate);
	if (PQstatus(conn) == CONNECTION_OK)
		PQclear(PQexec(conn, "ROLLBACK"));
	return o;
}

tx_outcome
tx_commit(PGconn *conn, const rq_txn *txn, char *msg, size_t msglen)
{
	int32_t read_only[RQ_MAX_SET];
	int nread_only = 0, i, j;
	char now_s[24], ts_s[24];
	char *reads = NULL, *accounts = NULL, *balances = NULL;
	PGresult *res = NULL;
	tx_outcome o;

	msg[0] = '\0';
	if ((o = step(conn, "BEGIN", 0, NULL, NULL, msg, msglen)) != TX_COMMIT)
		return o;
	reads = int_array(txn->reads, txn->nreads, sizeof(int32_t));
	accounts =
		int_array(&txn->writes[0].account, txn->nwrites, sizeof(rq_write));
	balances =
		int_array(&txn->writes[0].balance, txn->nwrites, sizeof(rq_write));
	if (reads == NULL || accounts == NULL || balances == NULL)
	{
		PQclear(PQexec(conn, "ROLLBACK"));
		snprintf(msg, msglen, "out of memory");
		o = TX_ERROR;
		goto done;
	}

	/* 1. optimistic validation of the read set */
	if (txn->has_time_stamp && txn->nreads > 0)
	{
		const char *p[2] = {reads, ts_s};

		snprintf(ts_s, sizeof(ts_s), "%lld", (long long) txn->time_stamp);
		if ((o = step(conn,
					  "SELECT account_number, updated_at FROM "
					  "public.bank_balance WHERE account_number = "
					  "ANY($1::int[]) AND updated_at > $2::bigint ORDER BY 1 "
					  "LIMIT 1",
					  2, p, &res, msg, msglen)) != TX_COMMIT)
			goto done;
		if (PQntuples(res) > 0)
		{
			snprintf(msg, msglen,
					 "account %s was updated at %s, after time_stamp %s",
					 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), ts_s);
			PQclear(res);
			PQclear(PQexec(conn, "ROLLBACK"));
			o = TX_ABORT;
			goto done;
		}
		PQclear(res);
	}

	/* 2. accounts read and not written take part in certification */
	for (i = 0; i < txn->nreads && txn->nwrites > 0; i++)
	{
		int written = 0;

		for (j = 0; j < txn->nwrites; j++)
			written |= txn->writes[j].account == txn->reads[i];
		if (!written)
			read_only[nread_only++] = txn->reads[i];
	}
	if (nread_only > 0)
	{
		char *ro = int_array(read_only, nread_only, sizeof(int32_t));
		const char *p[1] = {ro};

		if (ro == NULL)
		{
			PQclear(PQexec(conn, "ROLLBACK"));
			o = TX_ERROR;
			goto done;
		}
		o = step(conn,
				 "UPDATE public.bank_balance SET balance = balance WHERE "
				 "account_number = ANY($1::int[])",
				 1, p, NULL, msg, msglen);
		free(ro);
		if (o != TX_COMMIT)
			goto done;
	}

	/* 3. the writes */
	if (txn->nwrites > 0)
	{
		const char *p[3] = {accounts, balances, now_s};

		snprintf(now_s, sizeof(now_s), "%lld", tx_now_ns());
		if ((o = step(conn,
					  "INSERT INTO public.bank_balance AS b (account_number, "
					  "balance, created_at, updated_at) SELECT a, v, "
					  "$3::bigint, $3::bigint FROM unnest($1::int[], "
					  "$2::int[]) AS w(a, v) ON CONFLICT (account_number) DO "
					  "UPDATE SET balance = EXCLUDED.balance, updated_at = "
					  "EXCLUDED.updated_at",
					  3, p, NULL, msg, msglen)) != TX_COMMIT)
			goto done;
	}

	/* 4. certification and replication */
	res = PQexec(conn, "COMMIT");
	if (PQresultStatus(res) == PGRES_COMMAND_OK &&
		strcmp(PQcmdStatus(res), "COMMIT") == 0)
		o = TX_COMMIT;
	else if (PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		snprintf(msg, msglen, "the transaction was rolled back");
		o = TX_ABORT;
	}
	else
	{
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		snprintf(msg, msglen, "%s", PQerrorMessage(conn));
		if (msg[0] != '\0' && msg[strlen(msg) - 1] == '\n')
			msg[strlen(msg) - 1] = '\0';
		o = classify(conn, st ? st : "");
	}
	PQclear(res);
done:
	free(reads);
	free(accounts);
	free(balances);
	return o;
}
