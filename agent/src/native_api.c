/*
 * native_api.c
 *    paxosd's own API (docs/agent-api.md): status of the node and the
 *    cluster, text transactions for the web client, admin actions, metrics.
 *    Admin actions need "Authorization: Bearer <admin token>" always.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_view.h"
#include "db.h"
#include "metrics.h"
#include "node_control.h"
#include "request_parse.h"
#include "routes.h"
#include "transaction.h"

void
api_help(const http_request *req, http_response *resp)
{
	(void) req;
	http_reply_json(
		resp, 200,
		json_pack(
			"{s:[s,s,s,s,s,s,s,s,s,s,s,s]}", "endpoints",
			"GET  /api/status            node and cluster status",
			"POST /api/transaction       {\"text\": \"r(1)w(2=30)\"}",
			"POST /api/admin/down        stop this node's PostgreSQL (token)",
			"POST /api/admin/up          start it, wait for catch-up (token)",
			"POST /api/admin/switchover  {\"target_node_id\": N} (token)",
			"GET  /metrics               Prometheus text format",
			"POST /read/                 middleware: strong read",
			"POST /commit/               middleware: validated commit",
			"GET  /down_leader/          middleware: crash the leader",
			"GET  /up_node/              middleware: restart this node",
			"GET  /create/               web client",
			"GET  /                      web client"));
}

void
api_status(const http_request *req, http_response *resp)
{
	cv_view v;
	const cv_node *self;
	const cfg_node *me = cfg_self(req->cfg);

	cv_get(&v);
	self = cv_self(&v, req->cfg->node_id);
	http_reply_json(
		resp, 200,
		json_pack("{s:{s:i, s:s, s:b, s:b, s:s, s:i, s:i, s:b}, s:o}", "node",
				  "node_id", req->cfg->node_id, "role",
				  self ? self->role : "offline", "ready", nc_ready(),
				  "postgres_up", self ? self->up : 0, "host", me->host,
				  "pg_port", me->pg_port, "http_port", me->http_port,
				  "open_middleware_admin", req->cfg->open_middleware_admin,
				  "cluster", cv_to_json(&v, req->cfg)));
}

void
api_metrics(const http_request *req, http_response *resp)
{
	char *buf = malloc(8192);

	(void) req;
	if (buf == NULL)
	{
		http_reply_error(resp, 500, "out of memory");
		return;
	}
	met_render(buf, 8192);
	http_reply_text(resp, 200, "text/plain; version=0.0.4", buf, strlen(buf));
	free(buf);
}

/*
 * api_transaction runs the web client's text transaction: the reads first
 * (a strong read), then, if it writes, a commit validated against the time
 * of those reads: r(1)w(1=50) aborts if account 1 changed in between.
 */
void
api_transaction(const http_request *req, http_response *resp)
{
	rq_txn *txn = malloc(sizeof(rq_txn));
	char msg[1024] = "";
	json_t *data = NULL;
	long long ts = 0;
	PGconn *conn = NULL;
	tx_outcome o = TX_COMMIT;

	if (txn == NULL)
	{
		http_reply_error(resp, 500, "out of memory");
		return;
	}
	if (rq_parse_txn_text_request(req->body, req->body_len, txn, msg,
								  sizeof(msg)) != 0)
	{
		http_reply_error(resp, 400, "%s", msg);
		goto done;
	}
	if (!nc_ready() || (conn = db_get(msg, sizeof(msg))) == NULL)
	{
		http_reply_error(resp, 503, "node %d is down or not ready",
						 req->cfg->node_id);
		goto done;
	}
	if (txn->nreads > 0)
		o = tx_read(conn, txn, &data, &ts, msg, sizeof(msg));
	if (o == TX_COMMIT && txn->nwrites > 0)
	{
		txn->has_time_stamp = txn->nreads > 0;
		txn->time_stamp = ts;
		o = tx_commit(conn, txn, msg, sizeof(msg));
	}
	db_put(conn, o == TX_UNAVAILABLE || o == TX_ERROR);
	if (o == TX_COMMIT || o == TX_ABORT)
	{
		if (txn->nwrites > 0)
			(o == TX_COMMIT ? met_commit : met_abort)();
		else
			met_read();
		http_reply_json(
			resp, 200,
			json_pack("{s:i, s:s, s:o, s:I, s:s, s:s}", "node_id",
					  req->cfg->node_id, "commit",
					  o == TX_COMMIT ? "COMMIT" : "ABORT", "data",
					  data ? data : json_array(), "timestamp", (json_int_t) ts,
					  "reason", msg, "kind",
					  txn->nwrites > 0 ? "read-write" : "read-only"));
		data = NULL;
	}
	else
		http_reply_error(resp, o == TX_UNAVAILABLE ? 503 : 500, "%s", msg);
done:
	json_decref(data);
	free(txn);
}

/* need_token: admin endpoints of the native API always want the token. */
static int
need_token(const http_request *req, http_response *resp)
{
	if (http_authorized(req))
		return 1;
	http_reply_error(resp, 401,
					 "admin endpoint: send \"Authorization: Bearer <admin "
					 "token>\"");
	return 0;
}

void
api_admin_down(const http_request *req, http_response *resp)
{
	char err[512];

	if (!need_token(req, resp))
		return;
	if (nc_down(req->cfg, err, sizeof(err)) != 0)
		http_reply_error(resp, 500, "%s", err);
	else
		http_reply_json(resp, 200,
						json_pack("{s:i, s:i, s:s}", "status", 200, "node_id",
								  req->cfg->node_id, "state", "down"));
}

void
api_admin_up(const http_request *req, http_response *resp)
{
	char err[512];

	if (!need_token(req, resp))
		return;
	if (nc_up(req->cfg, err, sizeof(err)) != 0)
		http_reply_error(resp, 503, "node %d did not come up: %s",
						 req->cfg->node_id, err);
	else
		http_reply_json(resp, 200,
						json_pack("{s:i, s:i, s:s}", "status", 200, "node_id",
								  req->cfg->node_id, "state", "up"));
}

void
api_admin_switchover(const http_request *req, http_response *resp)
{
	char err[512];
	int target, rc;

	if (!need_token(req, resp))
		return;
	if (rq_parse_switchover(req->body, req->body_len, &target, CFG_MAX_NODES,
							err, sizeof(err)) != 0)
	{
		http_reply_error(resp, 400, "%s", err);
		return;
	}
	if (cfg_find(req->cfg, target) == NULL)
	{
		http_reply_error(resp, 400, "node %d is not in the configuration",
						 target);
		return;
	}
	rc = nc_switchover(req->cfg, target, err, sizeof(err));
	if (rc == -2)
		http_reply_error(resp, 501, "%s", err);
	else if (rc != 0)
		http_reply_error(resp, 503, "%s", err);
	else
		http_reply_json(
			resp, 200,
			json_pack("{s:i, s:i}", "status", 200, "target_node_id", target));
}
