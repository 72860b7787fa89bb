/*
 * http_server.c
 *    libmicrohttpd glue: one thread per connection (handlers block on
 *    PostgreSQL), bodies bounded by max_body, every answer counted in the
 *    metrics.
 *
 * Routing is a table: path and method to handler.  A known path with
 * another method is a 405, an unknown path a 404, both with a JSON error.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "metrics.h"
#include "routes.h"

/* what MHD keeps for us between the calls of one request */
typedef struct request_state
{
	char *body;
	size_t len;
	int too_large;
} request_state;

static struct MHD_Daemon *daemon_handle;
static const cfg_config *config;

void
http_reply_json(http_response *resp, int status, json_t *value)
{
	resp->status = status;
	resp->body = json_dumps(value, JSON_COMPACT);
	resp->len = resp->body ? strlen(resp->body) : 0;
	resp->content_type = "application/json";
	json_decref(value);
}

void
http_reply_error(http_response *resp, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_json(resp, status,
					json_pack("{s:i, s:s}", "status", status, "error", msg));
}

void
http_reply_text(http_response *resp, int status, const char *ctype,
				const char *text, size_t len)
{
	resp->status = status;
	resp->body = malloc(len + 1);
	if (resp->body != NULL)
	{
		memcpy(resp->body, text, len);
		resp->body[len] = '\0';
	}
	resp->len = resp->body ? len : 0;
	resp->content_type = ctype;
}

int
http_authorized(const http_request *req)
{
	const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
												"Authorization");
	const char *token = req->cfg->admin_token;
	size_t i, n = strlen(token);
	unsigned char diff = 0;

	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	if (strlen(h) != n)
		return 0;
	for (i = 0; i < n; i++)
		diff |= (unsigned char) (h[i] ^ token[i]);
	return diff == 0;
}

/*
 * allowed_origin returns the request's Origin if it is the web client of
 * one of the configured agents (which polls its peers' agents), else NULL.
 * Other sites get no CORS headers, so a browser keeps them out.
 */
static const char *
allowed_origin(struct MHD_Connection *conn)
{
	const char *origin =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	int i;

	if (origin == NULL)
		return NULL;
	for (i = 0; i < config->nnodes; i++)
	{
		char a[128], b[128];

		snprintf(a, sizeof(a), "http://%s:%d", config->nodes[i].host,
				 config->nodes[i].http_port);
		snprintf(b, sizeof(b), "http://localhost:%d",
				 config->nodes[i].http_port);
		if (strcmp(origin, a) == 0 || strcmp(origin, b) == 0)
			return origin;
	}
	return NULL;
}

static enum MHD_Result
send_response(struct MHD_Connection *conn, http_response *r)
{
	struct MHD_Response *mr;
	const char *origin = allowed_origin(conn);
	enum MHD_Result ret;

	if (r->body == NULL && r->status != 204)
	{
		/* out of memory building the answer */
		r->status = 500;
		r->content_type = "application/json";
		r->body = strdup("{\"status\":500,\"error\":\"out of memory\"}");
		r->len = r->body ? strlen(r->body) : 0;
	}
	met_http(r->status);
	mr = MHD_create_response_from_buffer(r->len, r->body ? r->body : "",
										 MHD_RESPMEM_MUST_COPY);
	free(r->body);
	r->body = NULL;
	if (mr == NULL)
		return MHD_NO;
	if (r->content_type != NULL)
		MHD_add_response_header(mr, "Content-Type", r->content_type);
	MHD_add_response_header(mr, "Cache-Control", "no-store");
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	if (origin != NULL)
	{
		MHD_add_response_header(mr, "Access-Control-Allow-Origin", origin);
		MHD_add_response_header(mr, "Vary", "Origin");
		MHD_add_response_header(mr, "Access-Control-Allow-Methods",
								"GET, POST, OPTIONS");
		MHD_add_response_header(mr, "Access-Control-Allow-Headers",
								"Authorization, Content-Type");
	}
	ret = MHD_queue_response(conn, (unsigned int) r->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* normalize_path drops a trailing '/' ("/read/" and "/read" are one). */
static void
normalize_path(const char *url, char *out, size_t len)
{
	size_t n;

	snprintf(out, len, "%s", url);
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
}

static void
dispatch(const http_request *req, http_response *resp)
{
	const route *r;
	int path_known = 0;

	if (strcmp(req->method, "OPTIONS") == 0)
	{
		/* CORS preflight: headers are added by send_response */
		resp->status = 204;
		resp->body = NULL;
		resp->len = 0;
		resp->content_type = NULL;
		return;
	}
	for (r = routes; r->path != NULL; r++)
	{
		if (strcmp(r->path, req->path) != 0)
			continue;
		path_known = 1;
		if (strcmp(r->method, req->method) == 0)
		{
			r->handler(req, resp);
			return;
		}
	}
	if (path_known)
		http_reply_error(resp, 405, "method %s not allowed on %s", req->method,
						 req->path);
	else
		http_reply_error(resp, 404, "no such endpoint: %s (see /api/help)",
						 req->path);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **con_cls)
{
	request_state *st = *con_cls;
	http_request req;
	http_response resp;
	char path[256];

	(void) cls;
	(void) version;
	if (st == NULL)
	{
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													 "Content-Length");

		st = calloc(1, sizeof(*st));
		if (st == NULL)
			return MHD_NO;
		*con_cls = st;
		/* refuse an announced oversize body before reading it */
		if (cl != NULL && strtoull(cl, NULL, 10) > config->max_body)
		{
			memset(&resp, 0, sizeof(resp));
			http_reply_error(&resp, 413, "request body larger than %zu bytes",
							 config->max_body);
			return send_response(conn, &resp);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		if (!st->too_large && st->len + *upload_data_size <= config->max_body)
		{
			char *nb = realloc(st->body, st->len + *upload_data_size + 1);

			if (nb == NULL)
				return MHD_NO;
			st->body = nb;
			memcpy(st->body + st->len, upload_data, *upload_data_size);
			st->len += *upload_data_size;
			st->body[st->len] = '\0';
		}
		else
			st->too_large = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}

	memset(&resp, 0, sizeof(resp));
	if (st->too_large)
	{
		http_reply_error(&resp, 413, "request body larger than %zu bytes",
						 config->max_body);
		return send_response(conn, &resp);
	}
	if (strlen(url) >= sizeof(path))
	{
		http_reply_error(&resp, 414, "path too long");
		return send_response(conn, &resp);
	}
	normalize_path(url, path, sizeof(path));
	req.method = method;
	req.path = path;
	req.body = st->body;
	req.body_len = st->len;
	req.conn = conn;
	req.cfg = config;
	dispatch(&req, &resp);
	return send_response(conn, &resp);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	request_state *st = *con_cls;

	(void) cls;
	(void) conn;
	(void) toe;
	if (st != NULL)
	{
		free(st->body);
		free(st);
		*con_cls = NULL;
	}
}

int
http_start(const cfg_config *cfg, char *err, size_t errlen)
{
	static struct sockaddr_in addr;
	const char *host = cfg->http_addr;

	config = cfg;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t) cfg_self(cfg)->http_port);
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
	{
		snprintf(err, errlen, "http_addr \"%s\" is not an IPv4 address",
				 cfg->http_addr);
		return -1;
	}
	daemon_handle = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &addr,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 128,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 120,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 128 * 1024,
		MHD_OPTION_END);
	if (daemon_handle == NULL)
	{
		snprintf(err, errlen, "cannot listen on %s:%d (in use?)",
				 cfg->http_addr, cfg_self(cfg)->http_port);
		return -1;
	}
	return 0;
}

void
http_stop(void)
{
	if (daemon_handle != NULL)
		MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
}
