/*
 * metrics.h
 *    Counters and gauges of the agent, served at /metrics in Prometheus'
 *    text format.
 */
#ifndef PAXOSD_METRICS_H
#define PAXOSD_METRICS_H

#include <stddef.h>

struct cv_view;

void met_commit(void);
void met_abort(void);
void met_read(void);
void met_leader_change(void);
void met_http(int status);

/* met_set_view records the gauges of a fresh cluster view. */
void met_set_view(const struct cv_view *view, int self_id);

/* met_render writes the exposition text into buf (NUL-terminated). */
void met_render(char *buf, size_t len);

#endif
