/*
 * http_client.c
 *    HTTP/1.0 over a blocking socket: the agent closes the connection after
 *    its answer, so "read until EOF" is the whole protocol.  Timeouts are
 *    socket options; a connect to a dead agent fails at once on loopback.
 */
#include "http_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int
connect_to(const char *host, int port, int timeout_s, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char portstr[16];
	int fd = -1, rc;
	struct timeval tv = {timeout_s, 0};

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0)
	{
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
	{
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port,
				 strerror(errno));
	return fd;
}

int
hc_request(const char *host, int port, const char *method, const char *path,
		   const char *token, const char *body, int timeout_s,
		   hc_response *resp, char *err, size_t errlen)
{
	char head[1024], *buf = NULL, *sep;
	size_t len = 0, cap = 0, blen = body ? strlen(body) : 0;
	int fd, n;

	resp->status = 0;
	resp->body = NULL;
	if ((fd = connect_to(host, port, timeout_s, err, errlen)) < 0)
		return -1;
	n = snprintf(
		head, sizeof(head),
		"%s %s HTTP/1.0\r\nHost: %s:%d\r\nConnection: close\r\n"
		"%s%s%s"
		"Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		method, path, host, port, token ? "Authorization: Bearer " : "",
		token ? token : "", token ? "\r\n" : "", blen);
	if (n < 0 || (size_t) n >= sizeof(head) ||
		write(fd, head, (size_t) n) != n ||
		(blen > 0 && write(fd, body, blen) != (ssize_t) blen))
	{
		snprintf(err, errlen, "cannot send to %s:%d", host, port);
		close(fd);
		return -1;
	}
	for (;;)
	{
		ssize_t got;

		if (len + 4096 + 1 > cap)
		{
			char *nb = realloc(buf, cap = cap * 2 + 8192);

			if (nb == NULL)
				break;
			buf = nb;
		}
		got = read(fd, buf + len, cap - len - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t) got;
	}
	close(fd);
	if (buf == NULL || len == 0)
	{
		snprintf(err, errlen, "no answer from %s:%d", host, port);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/%*s %d", &resp->status) != 1 ||
		(sep = strstr(buf, "\r\n\r\n")) == NULL)
	{
		snprintf(err, errlen, "malformed answer from %s:%d", host, port);
		free(buf);
		return -1;
	}
	resp->body = strdup(sep + 4);
	free(buf);
	return resp->body ? 0 : -1;
}
