/*
 * pg_node.h
 *    The agent's own PostgreSQL server: create its data directory, start it
 *    with pg_paxos loaded, stop it (fast, or immediate as a crash would).
 */
#ifndef PAXOSD_PG_NODE_H
#define PAXOSD_PG_NODE_H

#include <stddef.h>

#include "config.h"

/* pgn_prepare makes data_dir (owned by postgres when we are root), and
 * runs initdb in data_dir/data when it holds no cluster yet. */
int pgn_prepare(const cfg_config *cfg, char *err, size_t errlen);

/* pgn_start starts the server (no-op if it runs) and waits until it
 * accepts connections. */
int pgn_start(const cfg_config *cfg, char *err, size_t errlen);

/* pgn_stop stops it; mode is "fast" or "immediate" (a crash). */
int pgn_stop(const cfg_config *cfg, const char *mode, char *err,
			 size_t errlen);

/* pgn_running: 1 if the server of data_dir runs (pg_ctl status). */
int pgn_running(const cfg_config *cfg);

#endif
