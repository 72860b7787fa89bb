/*
 * node_control.h
 *    Taking the agent's node down and up on request (the middleware's
 *    /down_leader/ and /up_node/, the native admin endpoints), and whether
 *    it may serve transactions now.
 */
#ifndef PAXOSD_NODE_CONTROL_H
#define PAXOSD_NODE_CONTROL_H

#include <stddef.h>

#include "config.h"

/* nc_set_ready / nc_ready: bootstrapped and not taken down */
void nc_set_ready(int ready);
int nc_ready(void);

/* nc_down stops the node's PostgreSQL as a crash would (pg_ctl stop -m
 * immediate), then waits up to 10 s for the cluster view to show a leader
 * other than this node if there is a live majority.  0 when done. */
int nc_down(const cfg_config *cfg, char *err, size_t errlen);

/* nc_up starts it again and waits until it has caught up: a strong read
 * applies every round decided when it began.  0 when done. */
int nc_up(const cfg_config *cfg, char *err, size_t errlen);

/* nc_switchover asks the extension to hand leadership to target (needs
 * paxos_switchover); -2 when the extension lacks it. */
int nc_switchover(const cfg_config *cfg, int target, char *err, size_t errlen);

#endif
