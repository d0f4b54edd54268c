/*
 * Internal interface of the haproxy plugin: the parser of the runtime
 * API's reply (haproxy_stat.c). haproxy.c holds the plugin itself.
 *
 * The plugin asks, in one request,
 *     show stat <backend> 6 -1;show servers state <backend>
 * and HAProxy answers both, each output ending with an empty line:
 *     # pxname,svname,qcur,...,status,...      (CSV header)
 *     be,node-1,...,UP,...                     (one row per server)
 *     be,BACKEND,...,UP,...
 *     <empty line>
 *     1                                        (state format version)
 *     # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
 *     3 be 1 node-1 127.0.1.1 2 0 ...
 *     <empty line>
 * An unknown backend gives "No such proxy." and "Can't find backend."
 * instead. Columns are found by their names in the headers, so columns
 * added by later HAProxy versions do no harm.
 */
#ifndef TROIKA_HAPROXY_H
#define TROIKA_HAPROXY_H

#include <stddef.h>

/* Longest backend or server name accepted (HAProxy's names are short). */
#define HAPROXY_NAME_MAX 127
/* Most servers of one backend the parser keeps. */
#define HAPROXY_SERVERS_MAX 4096

/* srv_admin_state bits, as HAProxy's server-t.h defines them. */
#define HAPROXY_ADMF_FMAINT 0x01 /* forced into maintenance (set server) */
#define HAPROXY_ADMF_IMAINT 0x02 /* inherited from a tracked server */
#define HAPROXY_ADMF_CMAINT 0x04 /* `disabled` in the configuration */
#define HAPROXY_ADMF_FDRAIN 0x08 /* forced into drain (set server) */
#define HAPROXY_ADMF_IDRAIN 0x10 /* inherited from a tracked server */
#define HAPROXY_ADMF_RMAINT 0x20 /* address resolution failed: not chosen */

/* Operator's maintenance and drain: a server deliberately out of rotation. */
#define HAPROXY_ADMF_MAINT \
	(HAPROXY_ADMF_FMAINT | HAPROXY_ADMF_IMAINT | HAPROXY_ADMF_CMAINT)
#define HAPROXY_ADMF_DRAIN (HAPROXY_ADMF_FDRAIN | HAPROXY_ADMF_IDRAIN)

struct haproxy_server {
	char *name;
	char *status;  /* show stat's status column: "UP", "DOWN 1/2", ... */
	int admin;     /* srv_admin_state; -1 when show servers state lacked it */
	int op;        /* srv_op_state (0 stopped .. 3 stopping); -1 likewise */
	/* Counters and gauges from show stat; NAN where the cell was empty. */
	double scur, stot, qcur, weight, chkfail, downtime;
};

struct haproxy_backend {
	char *status;  /* the BACKEND row's status; NULL: no such row */
	double scur, stot, act, bck;
	struct haproxy_server *srv; /* in show stat's order */
	size_t nsrv;
};

/*
 * Parse the reply (any bytes, len of them) for backend. Returns 0 with be
 * filled in; -ENOENT when HAProxy has no such backend; -EBADMSG when the
 * reply is not what the two commands print (an error message, a truncated
 * or malformed table); -ENOMEM. On errors err holds one line saying why.
 * be must be zeroed or cleared before; clear it after either way.
 */
int haproxy_stat_parse(struct haproxy_backend *be, const char *buf,
    size_t len, const char *backend, char *err, size_t errlen);

/* Free what haproxy_stat_parse() built and zero be. Accepts NULL. */
void haproxy_backend_clear(struct haproxy_backend *be);

/* The server named name, or NULL. */
const struct haproxy_server *haproxy_backend_server(
    const struct haproxy_backend *be, const char *name);

/*
 * The state a server is in, as one word: MAINT or DRAIN when an operator
 * (or troika) took it out of rotation, else UP, DOWN or NOLB from its
 * health; another word of show stat's status column is returned as is.
 */
const char *haproxy_server_state(const struct haproxy_server *s);

/* 1 when MAINT or DRAIN by an operator (haproxy_server_state()). */
int haproxy_server_disabled(const struct haproxy_server *s);

/*
 * 1 when the server is up by its health (haproxy_exporter's
 * haproxy_server_up: UP, UP n/m, DRAIN and "no check" count as up).
 */
int haproxy_server_up(const struct haproxy_server *s);

/* 1 if s is a name HAProxy accepts (letters, digits, "-_.:"), not empty. */
int haproxy_name_valid(const char *s);

#endif
