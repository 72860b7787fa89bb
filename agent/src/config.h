/*
 * config.h
 *    paxosd's settings: a small "key = value" file, or the same keys as
 *    command-line flags (--key=value), flags winning.  See
 *    docs/agent-api.md for every key.
 */
#ifndef PAXOSD_CONFIG_H
#define PAXOSD_CONFIG_H

#include <stddef.h>

#define CFG_MAX_NODES 9
#define CFG_STR       256

/* One member of the cluster as every agent knows it. */
typedef struct cfg_node
{
	int id;
	char host[64];
	int pg_port;
	int http_port;
} cfg_node;

typedef struct cfg_config
{
	int node_id;               /* this node, 1..CFG_MAX_NODES */
	char data_dir[CFG_STR];    /* node directory; PGDATA is data_dir/data */
	char pg_bindir[CFG_STR];   /* initdb, pg_ctl */
	char group[64];            /* Paxos group to create or join */
	char http_addr[64];        /* listen address, 127.0.0.1 by default */
	char admin_token[CFG_STR]; /* bearer token of the admin endpoints */
	int open_middleware_admin; /* /down_leader/ /up_node/ without token */
	int fast_initdb;           /* initdb --no-sync (tests) */
	size_t max_body;           /* largest request body accepted */
	int nnodes;
	cfg_node nodes[CFG_MAX_NODES];
} cfg_config;

/* cfg_defaults fills every setting with its default. */
void cfg_defaults(cfg_config *cfg);

/* cfg_set sets one key; -1 and a message in err if key or value is bad. */
int cfg_set(cfg_config *cfg, const char *key, const char *value, char *err,
			size_t errlen);

/* cfg_load_file applies every "key = value" line of a file. */
int cfg_load_file(cfg_config *cfg, const char *path, char *err, size_t errlen);

/* cfg_finish checks the whole and derives what is left unset. */
int cfg_finish(cfg_config *cfg, char *err, size_t errlen);

/* cfg_token sets the admin token: given, read from admin_token_file
 * (default data_dir/admin_token), or made and written there. */
int cfg_token(cfg_config *cfg, char *err, size_t errlen);

/* cfg_self is this node's entry in nodes[]. */
const cfg_node *cfg_self(const cfg_config *cfg);
const cfg_node *cfg_find(const cfg_config *cfg, int id);

/* cfg_connstr writes the libpq connection string of a node: the one used
 * for group membership (pgp_metadata.host) as well as by the agent. */
void cfg_connstr(const cfg_node *node, char *buf, size_t len);

#endif
