/*
 * main.c
 *    paxosd: the node agent of pg_paxos, one per node.
 *
 *    paxosd -c paxosd.conf [--key=value ...]
 *
 * Initialises the node's data directory when empty, starts its PostgreSQL
 * with pg_paxos, creates or joins the group, makes bank_balance exist and
 * be replicated, and serves HTTP (the middleware's API, the native API, the
 * web client, metrics) until SIGINT or SIGTERM, when it stops PostgreSQL
 * (fast) and exits.  The HTTP server starts first, so that status is
 * available while the node boots.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootstrap.h"
#include "cluster_view.h"
#include "config.h"
#include "db.h"
#include "http_server.h"
#include "node_control.h"
#include "pg_node.h"

static volatile int stop_requested;

static void
on_signal(int sig)
{
	(void) sig;
	stop_requested = 1;
}

static void
usage(FILE *out)
{
	fprintf(
		out,
		"usage: paxosd [-c FILE] [--key=value ...]\n"
		"\n"
		"Keys (in FILE as \"key = value\", or as flags):\n"
		"  node_id          this node's id (1-%d)\n"
		"  node             \"ID HOST PG_PORT HTTP_PORT\", once per member\n"
		"  data_dir         node directory (PostgreSQL data in "
		"data_dir/data)\n"
		"  group            Paxos group (default demo)\n"
		"  http_addr        listen address (default 127.0.0.1)\n"
		"  admin_token      bearer token of admin endpoints\n"
		"  admin_token_file where to read or create it (default "
		"data_dir/admin_token)\n"
		"  open_middleware_admin  auto|yes|no: /down_leader/ and /up_node/ "
		"without token\n"
		"  pg_bindir        PostgreSQL programs\n"
		"  max_body         largest request body in bytes (default 65536)\n"
		"  fast_initdb      yes: initdb --no-sync (tests)\n"
		"See docs/agent-api.md.\n",
		CFG_MAX_NODES);
}

/* parse_args loads -c FILE first, then applies every --key=value. */
static int
parse_args(int argc, char **argv, cfg_config *cfg)
{
	char err[512];
	int i;

	for (i = 1; i < argc; i++)
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
			i + 1 < argc)
		{
			if (cfg_load_file(cfg, argv[++i], err, sizeof(err)) != 0)
			{
				fprintf(stderr, "paxosd: %s\n", err);
				return -1;
			}
		}
	for (i = 1; i < argc; i++)
	{
		char key[64];
		const char *value, *eq;

		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
		{
			i++;
			continue;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
		{
			usage(stdout);
			exit(0);
		}
		if (strncmp(argv[i], "--", 2) != 0)
		{
			fprintf(stderr, "paxosd: unexpected argument \"%s\"\n", argv[i]);
			usage(stderr);
			return -1;
		}
		eq = strchr(argv[i], '=');
		if (eq != NULL)
		{
			snprintf(key, sizeof(key), "%.*s", (int) (eq - argv[i] - 2),
					 argv[i] + 2);
			value = eq + 1;
		}
		else if (i + 1 < argc)
		{
			snprintf(key, sizeof(key), "%s", argv[i] + 2);
			value = argv[++i];
		}
		else
		{
			fprintf(stderr, "paxosd: %s needs a value\n", argv[i]);
			return -1;
		}
		for (char *k = key; *k; k++)
			if (*k == '-')
				*k = '_';
		if (cfg_set(cfg, key, value, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "paxosd: %s\n", err);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static cfg_config cfg;
	struct sigaction sa;
	char err[1024];
	const cfg_node *self;

	setvbuf(stdout, NULL, _IOLBF, 0);
	cfg_defaults(&cfg);
	if (parse_args(argc, argv, &cfg) != 0)
		return 2;
	if (cfg_finish(&cfg, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "paxosd: %s\n", err);
		return 2;
	}
	self = cfg_self(&cfg);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pgn_prepare(&cfg, err, sizeof(err)) != 0 ||
		cfg_token(&cfg, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "paxosd: node %d: %s\n", cfg.node_id, err);
		return 1;
	}
	db_init(&cfg);
	if (http_start(&cfg, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "paxosd: node %d: %s\n", cfg.node_id, err);
		return 1;
	}
	cv_start(&cfg);
	if (pgn_start(&cfg, err, sizeof(err)) != 0 ||
		boot_node(&cfg, &stop_requested, err, sizeof(err)) != 0)
	{
		if (!stop_requested)
			fprintf(stderr, "paxosd: node %d: %s\n", cfg.node_id, err);
		http_stop();
		pgn_stop(&cfg, "fast", err, sizeof(err));
		return stop_requested ? 0 : 1;
	}
	nc_set_ready(1);
	printf("paxosd: node %d ready: http://%s:%d/ (PostgreSQL on %s:%d, "
		   "group '%s')\n",
		   cfg.node_id, cfg.http_addr, self->http_port, self->host,
		   self->pg_port, cfg.group);

	/* the signal may land on any thread: poll the flag */
	while (!stop_requested)
		usleep(200 * 1000);

	printf("paxosd: node %d stopping\n", cfg.node_id);
	nc_set_ready(0);
	http_stop();
	db_close_all();
	if (pgn_stop(&cfg, "fast", err, sizeof(err)) != 0)
	{
		fprintf(stderr, "paxosd: node %d: %s\n", cfg.node_id, err);
		return 1;
	}
	return 0;
}
