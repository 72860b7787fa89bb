/*
 * cluster_view.h
 *    What the agent knows of the cluster: for every configured node whether
 *    its PostgreSQL answers, its role, the leader, decided and applied
 *    rounds, lag.  Refreshed in the background twice a second; readers get
 *    a copy.
 */
#ifndef PAXOSD_CLUSTER_VIEW_H
#define PAXOSD_CLUSTER_VIEW_H

#include <jansson.h>

#include "config.h"

typedef struct cv_node
{
	int id;
	int up;            /* its PostgreSQL answered */
	int member;        /* it is in the group */
	char role[16];     /* leader, follower, candidate, offline */
	int leader_id;     /* whom it names leader; 0 if unknown */
	long long ballot;  /* -1 if unknown */
	long long decided; /* -1 if unknown */
	long long applied; /* -1 if unknown */
	long long lag;     /* rounds behind the most decided; -1 unknown */
	char error[160];
} cv_node;

typedef struct cv_peer
{
	int node_id; /* 0 if the connection string is none of ours */
	char connstr[200];
	int reachable;
	char last_contact[40];
	long long lag;
} cv_peer;

typedef struct cv_view
{
	int nnodes;
	cv_node nodes[CFG_MAX_NODES];
	int leader_id; /* 0: no leader known */
	int native;    /* 1: some node answered paxos_node_status() */
	int npeers;    /* from paxos_peer_status() of this node */
	cv_peer peers[CFG_MAX_NODES];
	long long max_decided;
	long long refreshed_ms; /* CLOCK_REALTIME of the refresh, ms */
	long long generation;   /* counts refreshes */
} cv_view;

/* cv_start launches the refresher thread. */
int cv_start(const cfg_config *cfg);

/* cv_get copies the latest view. */
void cv_get(cv_view *out);

/* cv_wait_next waits (up to timeout_ms) for a refresh newer than
 * generation and copies it; 0 if one came. */
int cv_wait_next(long long generation, int timeout_ms, cv_view *out);

/* cv_self is this node's entry of a view. */
const cv_node *cv_self(const cv_view *view, int node_id);

/* cv_to_json describes a view for the native API and the web client. */
json_t *cv_to_json(const cv_view *view, const cfg_config *cfg);

#endif
