/*
 * webclient.c
 *    Serves the web client (agent/web/index.html, embedded at build time):
 *    the middleware's transaction box and a live view of the cluster.  The
 *    page talks to the agents' APIs by itself.
 */
#include "routes.h"

extern const char webclient_html[];
extern const unsigned long webclient_html_len;

void
web_index(const http_request *req, http_response *resp)
{
	(void) req;
	http_reply_text(resp, 200, "text/html; charset=utf-8", webclient_html,
					webclient_html_len);
}
