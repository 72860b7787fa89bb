/*
 * http_server.h
 *    The agent's HTTP server (libmicrohttpd): request bodies collected up to
 *    a limit, routing to handlers, JSON answers, CORS for the agents' own
 *    web clients, bearer-token checks.
 */
#ifndef PAXOSD_HTTP_SERVER_H
#define PAXOSD_HTTP_SERVER_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"

struct MHD_Connection;

typedef struct http_request
{
	const char *method;
	const char *path; /* without a trailing '/', "/" for the root */
	const char *body; /* NULL if none */
	size_t body_len;
	struct MHD_Connection *conn;
	const cfg_config *cfg;
} http_request;

typedef struct http_response
{
	int status;
	char *body; /* malloc'd, owned by the response */
	size_t len;
	const char *content_type;
} http_response;

typedef void (*http_handler)(const http_request *req, http_response *resp);

/* http_start listens on cfg->http_addr:port of this node; -1 on failure. */
int http_start(const cfg_config *cfg, char *err, size_t errlen);
void http_stop(void);

/* http_reply_json answers status with the JSON value (reference stolen). */
void http_reply_json(http_response *resp, int status, json_t *value);

/* http_reply_error answers {"status": status, "error": message}. */
void http_reply_error(http_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* http_reply_text answers a static text of the given content type. */
void http_reply_text(http_response *resp, int status, const char *ctype,
					 const char *text, size_t len);

/* http_authorized: whether the request carries "Authorization: Bearer
 * <admin_token>" (compared in constant time). */
int http_authorized(const http_request *req);

#endif
