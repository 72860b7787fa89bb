/*
 * http_client.h
 *    The smallest HTTP/1.0 client paxosctl needs: one request to an agent,
 *    the whole answer read, with a timeout.
 */
#ifndef PAXOSCTL_HTTP_CLIENT_H
#define PAXOSCTL_HTTP_CLIENT_H

#include <stddef.h>

typedef struct hc_response
{
	int status;
	char *body; /* malloc'd, NUL-terminated */
} hc_response;

/* hc_request sends METHOD path to host:port with an optional bearer token
 * and JSON body; 0 and *resp filled, or -1 with a message in err. */
int hc_request(const char *host, int port, const char *method,
			   const char *path, const char *token, const char *body,
			   int timeout_s, hc_response *resp, char *err, size_t errlen);

#endif
