/*
 * bootstrap.h
 *    Bringing a started node into the cluster (see bootstrap.c).
 */
#ifndef PAXOSD_BOOTSTRAP_H
#define PAXOSD_BOOTSTRAP_H

#include <stddef.h>

#include "config.h"

/* boot_node creates or joins the group and makes bank_balance exist and be
 * replicated.  Retries until it is done, *stop is set, or an error that
 * retrying cannot fix; 0 when done. */
int boot_node(const cfg_config *cfg, volatile int *stop, char *err,
			  size_t errlen);

#endif
