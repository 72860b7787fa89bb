/*
 * cluster_view.c
 *    Polling every node's PostgreSQL for its Paxos state.
 *
 * The agent asks each server itself (libpq, short timeouts) rather than
 * its agent: a server is what is up or down, and the extension is where
 * the state lives.  One thread refreshes; the view is guarded by view_lock
 * and handed out as copies, so no reader ever holds the lock while doing
 * I/O.
 *
 * The state comes from the extension's paxos_node_status() and
 * paxos_peer_status(): every node's own view of roles, leader and rounds.
 */
#include "cluster_view.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "metrics.h"

#define REFRESH_MS 500

static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t view_changed = PTHREAD_COND_INITIALIZER;
static cv_view current;
static const cfg_config *config;
static PGconn *conns[CFG_MAX_NODES];

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long
int_or(PGresult *res, int row, int col, long long dflt)
{
	return PQgetisnull(res, row, col) ? dflt
									  : atoll(PQgetvalue(res, row, col));
}

/* native_node_status reads paxos_node_status() of the node on conn. */
static int
native_node_status(PGconn *conn, const char *group, cv_node *n)
{
	const char *p[1] = {group};
	PGresult *res = db_exec(conn,
							"SELECT role, leader_id, ballot, decided_round, "
							"applied_round FROM paxos_node_status() WHERE "
							"group_id = $1",
							1, p, n->error, sizeof(n->error), NULL);

	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0)
	{
		n->member = 1;
		snprintf(n->role, sizeof(n->role), "%s", PQgetvalue(res, 0, 0));
		n->leader_id = (int) int_or(res, 0, 1, 0);
		n->ballot = int_or(res, 0, 2, -1);
		n->decided = int_or(res, 0, 3, -1);
		n->applied = int_or(res, 0, 4, -1);
	}
	PQclear(res);
	return 0;
}

/* has_word: whether the connection string has the keyword=value word. */
static int
has_word(const char *connstr, const char *word)
{
	size_t n = strlen(word);
	const char *p = connstr;

	while ((p = strstr(p, word)) != NULL)
	{
		if ((p == connstr || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

/* peer_status reads paxos_peer_status() of this node, if it has it. */
static void
peer_status(PGconn *conn, const cfg_config *cfg, cv_view *v)
{
	const char *p[1] = {cfg->group};
	char err[256];
	PGresult *res = db_exec(conn,
							"SELECT connection_string, reachable, "
							"last_contact::text, lag_rounds FROM "
							"paxos_peer_status() WHERE group_id = $1 ORDER BY "
							"peer_node_id",
							1, p, err, sizeof(err), NULL);
	int i, j;

	if (res == NULL)
		return;
	for (i = 0; i < PQntuples(res) && v->npeers < CFG_MAX_NODES; i++)
	{
		cv_peer *peer = &v->peers[v->npeers++];

		snprintf(peer->connstr, sizeof(peer->connstr), "%s",
				 PQgetvalue(res, i, 0));
		peer->reachable = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		snprintf(peer->last_contact, sizeof(peer->last_contact), "%s",
				 PQgetvalue(res, i, 2));
		peer->lag = int_or(res, i, 3, -1);
		/* the extension may order the keywords its own way: match the
		 * host and port */
		for (j = 0; j < cfg->nnodes; j++)
		{
			char host[80], port[24];

			snprintf(host, sizeof(host), "host=%s", cfg->nodes[j].host);
			snprintf(port, sizeof(port), "port=%d", cfg->nodes[j].pg_port);
			if (has_word(peer->connstr, host) && has_word(peer->connstr, port))
				peer->node_id = cfg->nodes[j].id;
		}
	}
	PQclear(res);
}

/* poll_node fills n from the node's server, (re)connecting as needed. */
static void
poll_node(int idx, const cfg_node *node, cv_node *n, int *native)
{
	PGconn **conn = &conns[idx];

	memset(n, 0, sizeof(*n));
	n->id = node->id;
	n->ballot = n->decided = n->applied = n->lag = -1;
	snprintf(n->role, sizeof(n->role), "offline");
	if (*conn != NULL && PQstatus(*conn) != CONNECTION_OK)
	{
		PQfinish(*conn);
		*conn = NULL;
	}
	if (*conn == NULL &&
		(*conn = db_connect_node(node, 1, n->error, sizeof(n->error))) == NULL)
		return;
	if (!db_function_exists(*conn, "paxos_node_status()"))
	{
		snprintf(n->error, sizeof(n->error),
				 "the installed pg_paxos has no paxos_node_status(): "
				 "install this repository's extension");
		goto broken;
	}
	*native = 1;
	if (native_node_status(*conn, config->group, n) != 0)
		goto broken;
	n->up = 1;
	if (!n->member)
		snprintf(n->role, sizeof(n->role), "joining");
	return;
broken:
	PQfinish(*conn);
	*conn = NULL;
}

/* pick_leader decides whom the view shows as leader: the one most up
 * nodes name. */
static void
pick_leader(cv_view *v)
{
	int i, j, best = 0, best_votes = 0;

	for (i = 0; i < v->nnodes; i++)
	{
		int votes = 0;

		if (!v->nodes[i].up || v->nodes[i].leader_id == 0)
			continue;
		for (j = 0; j < v->nnodes; j++)
			votes += v->nodes[j].up &&
					 v->nodes[j].leader_id == v->nodes[i].leader_id;
		if (votes > best_votes)
		{
			best_votes = votes;
			best = v->nodes[i].leader_id;
		}
	}
	if (best == 0)
		for (i = 0; i < v->nnodes; i++)
			if (v->nodes[i].up && strcmp(v->nodes[i].role, "leader") == 0)
				best = v->nodes[i].id;
	v->leader_id = best;
}

static void
refresh(void)
{
	cv_view v;
	int i;

	memset(&v, 0, sizeof(v));
	v.nnodes = config->nnodes;
	v.max_decided = -1;
	for (i = 0; i < config->nnodes; i++)
		poll_node(i, &config->nodes[i], &v.nodes[i], &v.native);
	pick_leader(&v);
	for (i = 0; i < v.nnodes; i++)
		if (v.nodes[i].decided > v.max_decided)
			v.max_decided = v.nodes[i].decided;
	for (i = 0; i < v.nnodes; i++)
		if (v.nodes[i].up && v.nodes[i].applied >= 0)
			v.nodes[i].lag = v.max_decided - v.nodes[i].applied;
	for (i = 0; i < config->nnodes; i++)
		if (config->nodes[i].id == config->node_id && conns[i] != NULL &&
			v.native && db_function_exists(conns[i], "paxos_peer_status()"))
			peer_status(conns[i], config, &v);
	v.refreshed_ms = now_ms();

	pthread_mutex_lock(&view_lock);
	if (v.leader_id != 0 && current.leader_id != 0 &&
		v.leader_id != current.leader_id)
		met_leader_change();
	v.generation = current.generation + 1;
	current = v;
	pthread_cond_broadcast(&view_changed);
	pthread_mutex_unlock(&view_lock);
	met_set_view(&v, config->node_id);
}

static void *
refresher(void *arg)
{
	(void) arg;
	for (;;)
	{
		refresh();
		usleep(REFRESH_MS * 1000);
	}
	return NULL;
}

int
cv_start(const cfg_config *cfg)
{
	pthread_t t;

	config = cfg;
	if (pthread_create(&t, NULL, refresher, NULL) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

void
cv_get(cv_view *out)
{
	pthread_mutex_lock(&view_lock);
	*out = current;
	pthread_mutex_unlock(&view_lock);
}

int
cv_wait_next(long long generation, int timeout_ms, cv_view *out)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&view_lock);
	while (current.generation <= generation && rc == 0)
		rc = pthread_cond_timedwait(&view_changed, &view_lock, &deadline);
	*out = current;
	pthread_mutex_unlock(&view_lock);
	return out->generation > generation ? 0 : -1;
}

const cv_node *
cv_self(const cv_view *view, int node_id)
{
	int i;

	for (i = 0; i < view->nnodes; i++)
		if (view->nodes[i].id == node_id)
			return &view->nodes[i];
	return NULL;
}

/* json_round: a round, or null when unknown. */
static json_t *
json_round(long long v)
{
	return v < 0 ? json_null() : json_integer(v);
}

json_t *
cv_to_json(const cv_view *view, const cfg_config *cfg)
{
	json_t *nodes = json_array(), *peers = json_array();
	int i;

	for (i = 0; i < view->nnodes; i++)
	{
		const cv_node *n = &view->nodes[i];
		const cfg_node *c = cfg_find(cfg, n->id);
		char url[128];

		snprintf(url, sizeof(url), "http://%s:%d/", c->host, c->http_port);
		json_array_append_new(
			nodes,
			json_pack("{s:i, s:s, s:b, s:b, s:s, s:i, s:o, s:o, s:o, s:o, "
					  "s:o, s:s}",
					  "node_id", n->id, "role", n->role, "leader",
					  n->id == view->leader_id, "up", n->up, "host", c->host,
					  "pg_port", c->pg_port, "agent_url", json_string(url),
					  "ballot", json_round(n->ballot), "decided_round",
					  json_round(n->decided), "applied_round",
					  json_round(n->applied), "lag", json_round(n->lag),
					  "error", n->error));
	}
	for (i = 0; i < view->npeers; i++)
	{
		const cv_peer *p = &view->peers[i];

		json_array_append_new(
			peers,
			json_pack("{s:o, s:s, s:b, s:s, s:o}", "node_id",
					  p->node_id ? json_integer(p->node_id) : json_null(),
					  "connection_string", p->connstr, "reachable",
					  p->reachable, "last_contact", p->last_contact,
					  "lag_rounds", json_round(p->lag)));
	}
	return json_pack(
		"{s:s, s:o, s:s, s:I, s:o, s:o}", "group", cfg->group, "leader_id",
		view->leader_id ? json_integer(view->leader_id) : json_null(),
		"source", view->native ? "paxos_node_status" : "none",
		"refreshed_ms", (json_int_t) view->refreshed_ms, "nodes", nodes,
		"peers", peers);
}
