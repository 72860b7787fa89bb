/*
 * middleware_api.c
 *    The replication middleware's HTTP API, same paths and JSON shapes:
 *
 *    POST /read/      {"transaction": {"read_set": [1, 2], "write_set": {}}}
 *                  -> {"read_status": "SUCCESS", "data": [[[1, 100], ts]],
 *                      "timestamp": ns}
 *    POST /commit/    {"transaction": {"read_set": [..], "write_set":
 *                      {"1": 100}, "time_stamp": ns}}
 *                  -> {"commit": "COMMIT"} or {"commit": "ABORT"}
 *    GET /down_leader/, GET /up_node/  -> {"status": 200}
 *
 * Errors are JSON too: {"status": 4xx/5xx, "error": "..."}; a node that is
 * down answers 503.  /down_leader/ and /up_node/ are open on a loopback
 * agent (the middleware's clients call them from a browser) and need the
 * admin token otherwise (open_middleware_admin, docs/agent-api.md).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cluster_view.h"
#include "db.h"
#include "metrics.h"
#include "node_control.h"
#include "request_parse.h"
#include "routes.h"
#include "transaction.h"

/* take_conn: a connection to this node's server, or a 503 already set. */
static PGconn *
take_conn(const http_request *req, http_response *resp)
{
	char err[512];
	PGconn *conn;

	if (!nc_ready())
	{
		http_reply_error(resp, 503, "node %d is down or not ready",
						 req->cfg->node_id);
		return NULL;
	}
	if ((conn = db_get(err, sizeof(err))) == NULL)
		http_reply_error(resp, 503, "node %d is down: %s", req->cfg->node_id,
						 err);
	return conn;
}

/* reply_failure answers an outcome that is neither COMMIT nor ABORT. */
static void
reply_failure(http_response *resp, tx_outcome o, const char *msg)
{
	if (o == TX_UNAVAILABLE)
		http_reply_error(resp, 503, "unavailable, outcome unknown: %s", msg);
	else
		http_reply_error(resp, 500, "%s", msg);
}

void
mw_read(const http_request *req, http_response *resp)
{
	rq_txn *txn = malloc(sizeof(rq_txn));
	char msg[1024];
	json_t *data = NULL;
	long long ts = 0;
	PGconn *conn;
	tx_outcome o;

	if (txn == NULL)
	{
		http_reply_error(resp, 500, "out of memory");
		return;
	}
	if (rq_parse_read(req->body, req->body_len, txn, msg, sizeof(msg)) != 0)
		http_reply_error(resp, 400, "%s", msg);
	else if ((conn = take_conn(req, resp)) != NULL)
	{
		o = tx_read(conn, txn, &data, &ts, msg, sizeof(msg));
		db_put(conn, o != TX_COMMIT);
		if (o == TX_COMMIT)
		{
			met_read();
			http_reply_json(resp, 200,
							json_pack("{s:s, s:o, s:I}", "read_status",
									  "SUCCESS", "data", data, "timestamp",
									  (json_int_t) ts));
		}
		else
			reply_failure(resp, o, msg);
	}
	free(txn);
}

void
mw_commit(const http_request *req, http_response *resp)
{
	rq_txn *txn = malloc(sizeof(rq_txn));
	char msg[1024];
	PGconn *conn;
	tx_outcome o;

	if (txn == NULL)
	{
		http_reply_error(resp, 500, "out of memory");
		return;
	}
	if (rq_parse_commit(req->body, req->body_len, txn, msg, sizeof(msg)) != 0)
		http_reply_error(resp, 400, "%s", msg);
	else if ((conn = take_conn(req, resp)) != NULL)
	{
		o = tx_commit(conn, txn, msg, sizeof(msg));
		db_put(conn, o == TX_UNAVAILABLE || o == TX_ERROR);
		if (o == TX_COMMIT || o == TX_ABORT)
		{
			if (o == TX_COMMIT)
				met_commit();
			else
				met_abort();
			http_reply_json(resp, 200,
							json_pack("{s:s}", "commit",
									  o == TX_COMMIT ? "COMMIT" : "ABORT"));
		}
		else
			reply_failure(resp, o, msg);
	}
	free(txn);
}

/* admin_allowed: the middleware's admin endpoints are open on loopback. */
static int
admin_allowed(const http_request *req, http_response *resp)
{
	if (req->cfg->open_middleware_admin || http_authorized(req))
		return 1;
	http_reply_error(resp, 401,
					 "this agent is not on loopback: send "
					 "\"Authorization: Bearer <admin token>\"");
	return 0;
}

void
mw_down_leader(const http_request *req, http_response *resp)
{
	char err[512];
	cv_view v;

	if (!admin_allowed(req, resp))
		return;
	cv_get(&v);
	if (v.leader_id != req->cfg->node_id)
	{
		const cfg_node *leader = cfg_find(req->cfg, v.leader_id);

		/* the middleware's clients call this on the leader's agent */
		if (leader != NULL)
		{
			char url[128];

			snprintf(url, sizeof(url), "http://%s:%d/down_leader/",
					 leader->host, leader->http_port);
			http_reply_json(resp, 409,
							json_pack("{s:i, s:s, s:i, s:s}", "status", 409,
									  "error", "this node is not the leader",
									  "leader_id", v.leader_id, "leader_url",
									  url));
		}
		else
			http_reply_error(resp, 409,
							 "this node is not the leader (no leader known)");
		return;
	}
	if (nc_down(req->cfg, err, sizeof(err)) != 0)
		http_reply_error(resp, 500, "%s", err);
	else
		http_reply_json(resp, 200, json_pack("{s:i}", "status", 200));
}

void
mw_up_node(const http_request *req, http_response *resp)
{
	char err[512];

	if (!admin_allowed(req, resp))
		return;
	if (nc_up(req->cfg, err, sizeof(err)) != 0)
		http_reply_error(resp, 503, "node %d did not come up: %s",
						 req->cfg->node_id, err);
	else
		http_reply_json(resp, 200, json_pack("{s:i}", "status", 200));
}
