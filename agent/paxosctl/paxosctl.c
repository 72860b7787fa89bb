/*
 * paxosctl.c
 *    Command-line tool of a pg_paxos cluster, through its agents (paxosd).
 *
 *    paxosctl [--agents H:P,H:P,...] [--token T | --token-file F] COMMAND
 *      status            table of the nodes (role, leader, rounds, lag)
 *      leader            the leader's node id
 *      switchover NODE   make NODE the leader (needs leader election)
 *      stop NODE         stop NODE's PostgreSQL, as a crash would
 *      start NODE        start it again; returns once it has caught up
 *
 * Agents default to $PAXOSCTL_AGENTS or 127.0.0.1:8000,8001,8002 (the
 * demo); the token to $PAXOSD_TOKEN.  The first agent that answers gives
 * the cluster's status, and with it every other agent's address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_client.h"

#define MAX_AGENTS 9

static char agent_host[MAX_AGENTS][64];
static int agent_port[MAX_AGENTS];
static int nagents;
static const char *token;

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: paxosctl [--agents HOST:PORT,...] [--token TOKEN | "
			"--token-file FILE] COMMAND\n"
			"  status            table of the nodes\n"
			"  leader            print the leader's node id\n"
			"  switchover NODE   make NODE the leader\n"
			"  stop NODE         stop NODE's PostgreSQL (immediate)\n"
			"  start NODE        start it; wait until it caught up\n"
			"Defaults: $PAXOSCTL_AGENTS or "
			"127.0.0.1:8000,127.0.0.1:8001,127.0.0.1:8002; $PAXOSD_TOKEN.\n");
}

/* parse_agents reads "host:port,host:port" (a bare port means 127.0.0.1) */
static int
parse_agents(const char *list)
{
	char buf[1024], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", list);
	nagents = 0;
	for (tok = strtok_r(buf, ",", &save); tok && nagents < MAX_AGENTS;
		 tok = strtok_r(NULL, ",", &save))
	{
		char *colon = strrchr(tok, ':');
		int port = atoi(colon ? colon + 1 : tok);

		if (port <= 0 || port > 65535)
		{
			fprintf(stderr, "paxosctl: bad agent address \"%s\"\n", tok);
			return -1;
		}
		if (colon)
			snprintf(agent_host[nagents], sizeof(agent_host[0]), "%.*s",
					 (int) (colon - tok), tok);
		else
			snprintf(agent_host[nagents], sizeof(agent_host[0]), "127.0.0.1");
		agent_port[nagents++] = port;
	}
	return nagents > 0 ? 0 : -1;
}

/* fetch_status asks the agents in turn for /api/status. */
static json_t *
fetch_status(void)
{
	int i;

	for (i = 0; i < nagents; i++)
	{
		hc_response r;
		char err[256];
		json_t *j;

		if (hc_request(agent_host[i], agent_port[i], "GET", "/api/status",
					   NULL, NULL, 5, &r, err, sizeof(err)) != 0)
			continue;
		j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
		free(r.body);
		if (j != NULL)
			return j;
	}
	fprintf(stderr, "paxosctl: no agent answers (tried %d; --agents?)\n",
			nagents);
	return NULL;
}

static const char *
round_str(json_t *v, char *buf, size_t len)
{
	if (!json_is_integer(v))
		return "-";
	snprintf(buf, len, "%lld", (long long) json_integer_value(v));
	return buf;
}

static int
cmd_status(void)
{
	json_t *st = fetch_status(), *cl, *nodes, *n;
	size_t i;
	const char *line = "+--------+-----------+-----------------+---------+"
					   "---------+-----+---------------------------+";

	if (st == NULL)
		return 1;
	cl = json_object_get(st, "cluster");
	nodes = json_object_get(cl, "nodes");
	printf("Cluster: %s   leader: ",
		   json_string_value(json_object_get(cl, "group")));
	if (json_is_integer(json_object_get(cl, "leader_id")))
		printf("node %lld", (long long) json_integer_value(
								json_object_get(cl, "leader_id")));
	else
		printf("none");
	printf("   (source: %s)\n",
		   json_string_value(json_object_get(cl, "source")));
	printf("%s\n| %-6s | %-9s | %-15s | %7s | %7s | %3s | %-25s |\n%s\n", line,
		   "Node", "Role", "PostgreSQL", "Decided", "Applied", "Lag", "Agent",
		   line);
	json_array_foreach(nodes, i, n)
	{
		char node[16], pg[32], d[24], a[24], l[24];
		int up = json_is_true(json_object_get(n, "up"));

		snprintf(node, sizeof(node), "%lld%s",
				 (long long) json_integer_value(json_object_get(n, "node_id")),
				 json_is_true(json_object_get(n, "leader")) ? " *" : "");
		snprintf(
			pg, sizeof(pg), "%s:%lld", up ? "running" : "down",
			(long long) json_integer_value(json_object_get(n, "pg_port")));
		printf("| %-6s | %-9s | %-15s | %7s | %7s | %3s | %-25s |\n", node,
			   json_string_value(json_object_get(n, "role")), pg,
			   round_str(json_object_get(n, "decided_round"), d, sizeof(d)),
			   round_str(json_object_get(n, "applied_round"), a, sizeof(a)),
			   round_str(json_object_get(n, "lag"), l, sizeof(l)),
			   json_string_value(json_object_get(n, "agent_url")));
	}
	printf("%s\n", line);
	json_decref(st);
	return 0;
}

static int
cmd_leader(void)
{
	json_t *st = fetch_status(), *id;
	int rc = 1;

	if (st == NULL)
		return 1;
	id = json_object_get(json_object_get(st, "cluster"), "leader_id");
	if (json_is_integer(id))
	{
		printf("%lld\n", (long long) json_integer_value(id));
		rc = 0;
	}
	else
		fprintf(stderr, "paxosctl: no leader known\n");
	json_decref(st);
	return rc;
}

/* agent_of finds the host and port of node's agent from the status. */
static int
agent_of(int node, char *host, size_t hostlen, int *port)
{
	json_t *st = fetch_status(), *n;
	size_t i;
	int found = 0;

	if (st == NULL)
		return -1;
	json_array_foreach(
		json_object_get(json_object_get(st, "cluster"), "nodes"), i, n)
	{
		const char *url = json_string_value(json_object_get(n, "agent_url"));

		if (json_integer_value(json_object_get(n, "node_id")) == node && url &&
			sscanf(url, "http://%63[^:]:%d", host, port) == 2)
			found = 1;
	}
	(void) hostlen;
	json_decref(st);
	if (!found)
		fprintf(stderr, "paxosctl: node %d is not in the cluster\n", node);
	return found ? 0 : -1;
}

/* admin posts to an admin endpoint of node's agent and reports. */
static int
admin(int node, const char *path, const char *body)
{
	char host[64], err[256];
	int port;
	hc_response r;

	if (token == NULL)
	{
		fprintf(stderr, "paxosctl: admin commands need the token "
						"(--token, --token-file or $PAXOSD_TOKEN)\n");
		return 2;
	}
	if (agent_of(node, host, sizeof(host), &port) != 0)
		return 1;
	if (hc_request(host, port, "POST", path, token, body, 120, &r, err,
				   sizeof(err)) != 0)
	{
		fprintf(stderr, "paxosctl: %s\n", err);
		return 1;
	}
	if (r.status == 200)
		printf("node %d: %s done\n", node, path + strlen("/api/admin/"));
	else
		fprintf(stderr, "paxosctl: node %d answered %d: %s\n", node, r.status,
				r.body);
	free(r.body);
	return r.status == 200 ? 0 : 1;
}

static char *
read_token_file(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");

	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
	{
		fprintf(stderr, "paxosctl: cannot read token from %s\n", path);
		if (f)
			fclose(f);
		exit(2);
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}

int
main(int argc, char **argv)
{
	const char *agents = getenv("PAXOSCTL_AGENTS");
	int i = 1, node;

	token = getenv("PAXOSD_TOKEN");
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++)
	{
		if (strcmp(argv[i], "--agents") == 0 && i + 1 < argc)
			agents = argv[++i];
		else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
			token = argv[++i];
		else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
			token = read_token_file(argv[++i]);
		else if (strcmp(argv[i], "--help") == 0)
		{
			usage(stdout);
			return 0;
		}
		else
		{
			usage(stderr);
			return 2;
		}
	}
	if (parse_agents(
			agents ? agents
				   : "127.0.0.1:8000,127.0.0.1:8001,127.0.0.1:8002") != 0)
		return 2;
	if (i >= argc)
	{
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "status") == 0 || strcmp(argv[i], "list") == 0)
		return cmd_status();
	if (strcmp(argv[i], "leader") == 0)
		return cmd_leader();
	if (i + 1 >= argc || (node = atoi(argv[i + 1])) <= 0)
	{
		fprintf(stderr, "paxosctl: %s needs a node id\n", argv[i]);
		return 2;
	}
	if (strcmp(argv[i], "stop") == 0)
		return admin(node, "/api/admin/down", NULL);
	if (strcmp(argv[i], "start") == 0)
		return admin(node, "/api/admin/up", NULL);
	if (strcmp(argv[i], "switchover") == 0)
	{
		char body[64], host[64];
		int port;
		json_t *st = fetch_status();
		json_t *lid =
			st ? json_object_get(json_object_get(st, "cluster"), "leader_id")
			   : NULL;
		int leader = json_is_integer(lid) ? (int) json_integer_value(lid) : 0;

		json_decref(st);
		/* asked of the current leader's agent when known */
		if (leader == 0 || agent_of(leader, host, sizeof(host), &port) != 0)
			leader = node;
		snprintf(body, sizeof(body), "{\"target_node_id\": %d}", node);
		return admin(leader, "/api/admin/switchover", body);
	}
	usage(stderr);
	return 2;
}
