/*
 * config.c
 *    Reading paxosd's settings from a file and from flags (same keys).
 *
 * The admin token is the one secret: when none is given, the agent reads it
 * from admin_token_file, or makes a random one and writes it there (mode
 * 0600), so that an operator (and make demo) can find it and restarts keep
 * it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PG_BINDIR_DEFAULT
#define PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#endif

static int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static char admin_token_file[CFG_STR];
static char open_admin_setting[8] = "auto";

static int
cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void
cfg_defaults(cfg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->pg_bindir, sizeof(cfg->pg_bindir), "%s", PG_BINDIR_DEFAULT);
	snprintf(cfg->group, sizeof(cfg->group), "demo");
	snprintf(cfg->http_addr, sizeof(cfg->http_addr), "127.0.0.1");
	cfg->max_body = 64 * 1024;
	cfg->open_middleware_admin = -1;
}

/* copy_str copies value into a fixed buffer, refusing what does not fit. */
static int
copy_str(char *dst, size_t size, const char *key, const char *value, char *err,
		 size_t errlen)
{
	if (strlen(value) >= size)
		return cfg_fail(err, errlen, "%s: value longer than %zu bytes", key,
						size - 1);
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int
parse_int(const char *value, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* parse_node reads "ID HOST PGPORT HTTPPORT" (blanks or colons between). */
static int
parse_node(cfg_config *cfg, const char *value, char *err, size_t errlen)
{
	char buf[CFG_STR], *fields[4], *save = NULL, *tok;
	int n = 0, i;
	long id, pg, http;
	cfg_node *node;

	if (copy_str(buf, sizeof(buf), "node", value, err, errlen) != 0)
		return -1;
	for (tok = strtok_r(buf, " \t:", &save); tok != NULL && n < 4;
		 tok = strtok_r(NULL, " \t:", &save))
		fields[n++] = tok;
	if (n != 4 || tok != NULL)
		return cfg_fail(err, errlen,
						"node: expected \"ID HOST PG_PORT HTTP_PORT\", got "
						"\"%s\"",
						value);
	if (parse_int(fields[0], 1, CFG_MAX_NODES, &id) != 0 ||
		parse_int(fields[2], 1, 65535, &pg) != 0 ||
		parse_int(fields[3], 1, 65535, &http) != 0)
		return cfg_fail(err, errlen,
						"node: bad id (1-%d) or port (1-65535) in \"%s\"",
						CFG_MAX_NODES, value);
	for (i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i].id == id)
			return cfg_fail(err, errlen, "node %ld is listed twice", id);
	if (cfg->nnodes >= CFG_MAX_NODES)
		return cfg_fail(err, errlen, "more than %d nodes", CFG_MAX_NODES);
	node = &cfg->nodes[cfg->nnodes];
	if (copy_str(node->host, sizeof(node->host), "node host", fields[1], err,
				 errlen) != 0)
		return -1;
	node->id = (int) id;
	node->pg_port = (int) pg;
	node->http_port = (int) http;
	cfg->nnodes++;
	return 0;
}

int
cfg_set(cfg_config *cfg, const char *key, const char *value, char *err,
		size_t errlen)
{
	long v;

	if (strcmp(key, "node_id") == 0)
	{
		if (parse_int(value, 1, CFG_MAX_NODES, &v) != 0)
			return cfg_fail(err, errlen, "node_id must be 1 to %d",
							CFG_MAX_NODES);
		cfg->node_id = (int) v;
		return 0;
	}
	if (strcmp(key, "node") == 0)
		return parse_node(cfg, value, err, errlen);
	if (strcmp(key, "data_dir") == 0)
		return copy_str(cfg->data_dir, sizeof(cfg->data_dir), key, value, err,
						errlen);
	if (strcmp(key, "pg_bindir") == 0)
		return copy_str(cfg->pg_bindir, sizeof(cfg->pg_bindir), key, value,
						err, errlen);
	if (strcmp(key, "group") == 0)
		return copy_str(cfg->group, sizeof(cfg->group), key, value, err,
						errlen);
	if (strcmp(key, "http_addr") == 0)
		return copy_str(cfg->http_addr, sizeof(cfg->http_addr), key, value,
						err, errlen);
	if (strcmp(key, "admin_token") == 0)
		return copy_str(cfg->admin_token, sizeof(cfg->admin_token), key, value,
						err, errlen);
	if (strcmp(key, "admin_token_file") == 0)
		return copy_str(admin_token_file, sizeof(admin_token_file), key, value,
						err, errlen);
	if (strcmp(key, "open_middleware_admin") == 0)
	{
		if (strcmp(value, "auto") != 0 && strcmp(value, "yes") != 0 &&
			strcmp(value, "no") != 0)
			return cfg_fail(err, errlen,
							"open_middleware_admin must be auto, yes or no");
		snprintf(open_admin_setting, sizeof(open_admin_setting), "%s", value);
		return 0;
	}
	if (strcmp(key, "fast_initdb") == 0)
	{
		cfg->fast_initdb =
			strcmp(value, "yes") == 0 || strcmp(value, "1") == 0;
		return 0;
	}
	if (strcmp(key, "max_body") == 0)
	{
		if (parse_int(value, 256, 16 * 1024 * 1024, &v) != 0)
			return cfg_fail(err, errlen, "max_body must be 256 to 16777216");
		cfg->max_body = (size_t) v;
		return 0;
	}
	return cfg_fail(err, errlen, "unknown setting \"%s\"", key);
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		*--end = '\0';
	return s;
}

int
cfg_load_file(cfg_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0;

	if (f == NULL)
		return cfg_fail(err, errlen, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char *s = trim(line), *eq, msg[512];

		lineno++;
		if (*s == '\0' || *s == '#')
			continue;
		if ((eq = strchr(s, '=')) == NULL)
		{
			fclose(f);
			return cfg_fail(err, errlen, "%s:%d: expected key = value", path,
							lineno);
		}
		*eq = '\0';
		if (cfg_set(cfg, trim(s), trim(eq + 1), msg, sizeof(msg)) != 0)
		{
			fclose(f);
			return cfg_fail(err, errlen, "%s:%d: %s", path, lineno, msg);
		}
	}
	fclose(f);
	return 0;
}

/*
 * load_or_make_token reads the admin token from path, or writes a new
 * random one there (0600) when the file does not exist.
 */
static int
load_or_make_token(cfg_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	unsigned char raw[16];
	int fd, i;

	if (f != NULL)
	{
		char buf[CFG_STR];

		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
		snprintf(cfg->admin_token, sizeof(cfg->admin_token), "%s", trim(buf));
		if (strlen(cfg->admin_token) < 8)
			return cfg_fail(err, errlen,
							"%s: admin token shorter than 8 characters", path);
		return 0;
	}
	fd = open("/dev/urandom", O_RDONLY);
	if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t) sizeof(raw))
	{
		if (fd >= 0)
			close(fd);
		return cfg_fail(err, errlen, "cannot read /dev/urandom");
	}
	close(fd);
	for (i = 0; i < (int) sizeof(raw); i++)
		snprintf(cfg->admin_token + 2 * i, 3, "%02x", raw[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, cfg->admin_token, strlen(cfg->admin_token)) < 0)
	{
		if (fd >= 0)
			close(fd);
		return cfg_fail(err, errlen, "cannot write %s: %s", path,
						strerror(errno));
	}
	close(fd);
	return 0;
}

static int
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "localhost") == 0 ||
		   strcmp(addr, "::1") == 0;
}

int
cfg_finish(cfg_config *cfg, char *err, size_t errlen)
{
	if (cfg->node_id == 0)
		return cfg_fail(err, errlen, "node_id is not set");
	if (cfg->data_dir[0] == '\0')
		return cfg_fail(err, errlen, "data_dir is not set");
	if (cfg->data_dir[0] != '/')
		return cfg_fail(err, errlen, "data_dir must be an absolute path");
	if (cfg_self(cfg) == NULL)
		return cfg_fail(
			err, errlen,
			"no \"node = %d HOST PG_PORT HTTP_PORT\" line for this "
			"node",
			cfg->node_id);
	if (strcmp(open_admin_setting, "auto") == 0)
		cfg->open_middleware_admin = is_loopback(cfg->http_addr);
	else
		cfg->open_middleware_admin = strcmp(open_admin_setting, "yes") == 0;
	return 0;
}

int
cfg_token(cfg_config *cfg, char *err, size_t errlen)
{
	char path[CFG_STR + 32];

	if (cfg->admin_token[0] != '\0')
	{
		if (strlen(cfg->admin_token) < 8)
			return cfg_fail(err, errlen,
							"admin_token shorter than 8 characters");
		return 0;
	}
	if (admin_token_file[0] != '\0')
		snprintf(path, sizeof(path), "%s", admin_token_file);
	else
		snprintf(path, sizeof(path), "%s/admin_token", cfg->data_dir);
	return load_or_make_token(cfg, path, err, errlen);
}

const cfg_node *
cfg_find(const cfg_config *cfg, int id)
{
	int i;

	for (i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i].id == id)
			return &cfg->nodes[i];
	return NULL;
}

const cfg_node *
cfg_self(const cfg_config *cfg)
{
	return cfg_find(cfg, cfg->node_id);
}

void
cfg_connstr(const cfg_node *node, char *buf, size_t len)
{
	snprintf(buf, len, "host=%s port=%d dbname=postgres user=postgres",
			 node->host, node->pg_port);
}
