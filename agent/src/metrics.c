/*
 * metrics.c
 *    The agent's counters, in atomics so that request threads never wait
 *    for each other to count; gauges copied from the cluster view under a
 *    mutex.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cluster_view.h"

/* HTTP statuses counted one by one; anything else lands in "other" */
static const int http_codes[] = {200, 400, 401, 403, 404, 405,
								 409, 413, 500, 501, 503};
#define NCODES (sizeof(http_codes) / sizeof(http_codes[0]))

static atomic_llong commits, aborts, reads, leader_changes;
static atomic_llong http_by_code[NCODES + 1];

static pthread_mutex_t gauge_lock = PTHREAD_MUTEX_INITIALIZER;
static long long g_decided = -1, g_applied = -1, g_lag = -1;
static int g_leader, g_pg_up, g_nodes_up;

void
met_commit(void)
{
	atomic_fetch_add(&commits, 1);
}

void
met_abort(void)
{
	atomic_fetch_add(&aborts, 1);
}

void
met_read(void)
{
	atomic_fetch_add(&reads, 1);
}

void
met_leader_change(void)
{
	atomic_fetch_add(&leader_changes, 1);
}

void
met_http(int status)
{
	size_t i;

	for (i = 0; i < NCODES; i++)
		if (http_codes[i] == status)
			break;
	atomic_fetch_add(&http_by_code[i], 1);
}

void
met_set_view(const struct cv_view *view, int self_id)
{
	const cv_node *self = cv_self(view, self_id);
	int i, up = 0;

	for (i = 0; i < view->nnodes; i++)
		up += view->nodes[i].up;
	pthread_mutex_lock(&gauge_lock);
	g_decided = self ? self->decided : -1;
	g_applied = self ? self->applied : -1;
	g_lag = self ? self->lag : -1;
	g_pg_up = self ? self->up : 0;
	g_leader = view->leader_id;
	g_nodes_up = up;
	pthread_mutex_unlock(&gauge_lock);
}

/* appendf appends to buf at *off, never past len. */
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t) n < len - *off ? (size_t) n : len - *off - 1;
}

void
met_render(char *buf, size_t len)
{
	size_t off = 0, i;

	buf[0] = '\0';
	appendf(buf, len, &off,
			"# HELP paxosd_commits_total Transactions committed through "
			"this agent.\n# TYPE paxosd_commits_total counter\n"
			"paxosd_commits_total %lld\n",
			(long long) atomic_load(&commits));
	appendf(buf, len, &off,
			"# HELP paxosd_aborts_total Transactions aborted (validation "
			"or certification).\n# TYPE paxosd_aborts_total counter\n"
			"paxosd_aborts_total %lld\n",
			(long long) atomic_load(&aborts));
	appendf(buf, len, &off,
			"# HELP paxosd_reads_total Read transactions served.\n"
			"# TYPE paxosd_reads_total counter\npaxosd_reads_total %lld\n",
			(long long) atomic_load(&reads));
	appendf(buf, len, &off,
			"# HELP paxosd_leader_changes_total Leader changes this agent "
			"has seen.\n# TYPE paxosd_leader_changes_total counter\n"
			"paxosd_leader_changes_total %lld\n",
			(long long) atomic_load(&leader_changes));
	appendf(buf, len, &off,
			"# HELP paxosd_http_requests_total HTTP requests by status.\n"
			"# TYPE paxosd_http_requests_total counter\n");
	for (i = 0; i <= NCODES; i++)
	{
		char code[8];

		if (i < NCODES)
			snprintf(code, sizeof(code), "%d", http_codes[i]);
		else
			snprintf(code, sizeof(code), "other");
		appendf(buf, len, &off,
				"paxosd_http_requests_total{code=\"%s\"} %lld\n", code,
				(long long) atomic_load(&http_by_code[i]));
	}
	pthread_mutex_lock(&gauge_lock);
	appendf(buf, len, &off,
			"# HELP paxosd_decided_round Highest round this node knows "
			"decided (-1 unknown).\n# TYPE paxosd_decided_round gauge\n"
			"paxosd_decided_round %lld\n"
			"# HELP paxosd_applied_round Highest round this node applied.\n"
			"# TYPE paxosd_applied_round gauge\npaxosd_applied_round %lld\n"
			"# HELP paxosd_apply_lag_rounds Rounds this node is behind the "
			"most decided node.\n# TYPE paxosd_apply_lag_rounds gauge\n"
			"paxosd_apply_lag_rounds %lld\n"
			"# HELP paxosd_leader_id Node the cluster view shows as leader "
			"(0 none).\n# TYPE paxosd_leader_id gauge\npaxosd_leader_id %d\n"
			"# HELP paxosd_postgres_up Whether this node's PostgreSQL "
			"answers.\n# TYPE paxosd_postgres_up gauge\n"
			"paxosd_postgres_up %d\n"
			"# HELP paxosd_nodes_up Nodes whose PostgreSQL answers.\n"
			"# TYPE paxosd_nodes_up gauge\npaxosd_nodes_up %d\n",
			g_decided, g_applied, g_lag, g_leader, g_pg_up, g_nodes_up);
	pthread_mutex_unlock(&gauge_lock);
}
