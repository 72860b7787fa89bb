/*
 * routes.c
 *    The routing table: what each path and method runs.  Paths are compared
 *    without their trailing '/' (http_server.c drops it).
 */
#include "routes.h"

#include <stddef.h>

const route routes[] = {
	/* the web client */
	{"GET", "/", web_index},
	{"GET", "/create", web_index},
	/* the replication middleware's API (same paths and JSON) */
	{"POST", "/read", mw_read},
	{"POST", "/commit", mw_commit},
	{"GET", "/down_leader", mw_down_leader},
	{"GET", "/up_node", mw_up_node},
	/* the native API (docs/agent-api.md) */
	{"GET", "/api", api_help},
	{"GET", "/api/help", api_help},
	{"GET", "/api/status", api_status},
	{"POST", "/api/transaction", api_transaction},
	{"POST", "/api/admin/down", api_admin_down},
	{"POST", "/api/admin/up", api_admin_up},
	{"POST", "/api/admin/switchover", api_admin_switchover},
	{"GET", "/metrics", api_metrics},
	{NULL, NULL, NULL},
};
