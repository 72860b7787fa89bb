/*
 * routes.h
 *    Every endpoint of the agent, and the handlers behind them.
 */
#ifndef PAXOSD_ROUTES_H
#define PAXOSD_ROUTES_H

#include "http_server.h"

typedef struct route
{
	const char *method;
	const char *path;
	http_handler handler;
} route;

/* the table, ended by a NULL path (routes.c) */
extern const route routes[];

/* middleware_api.c: the replication middleware's API */
void mw_read(const http_request *req, http_response *resp);
void mw_commit(const http_request *req, http_response *resp);
void mw_down_leader(const http_request *req, http_response *resp);
void mw_up_node(const http_request *req, http_response *resp);

/* native_api.c */
void api_status(const http_request *req, http_response *resp);
void api_transaction(const http_request *req, http_response *resp);
void api_admin_down(const http_request *req, http_response *resp);
void api_admin_up(const http_request *req, http_response *resp);
void api_admin_switchover(const http_request *req, http_response *resp);
void api_help(const http_request *req, http_response *resp);
void api_metrics(const http_request *req, http_response *resp);

/* webclient.c */
void web_index(const http_request *req, http_response *resp);

#endif
