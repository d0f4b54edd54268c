/*
 * troika-coord's configuration: a YAML file (core/lib/yaml_tree) with
 *   node:    { name: coord-1 }          default: the host name
 *   listen:  "127.0.0.1:7443"           gRPC, host:port (required)
 *   metrics: { listen: "127.0.0.1:9465" }  /metrics and /healthz; optional
 *   log:     { level: info, target: stderr|syslog }
 *   agents:  { heartbeat: 5s, timeout: 15s }  heartbeat: told to agents in
 *            Welcome, and sent by the coordinator on a stream it had
 *            nothing else to send on for that long; timeout: a stream
 *            silent that long is ended (UNAVAILABLE), its node disconnected;
 *            default three heartbeats
 *   tls:     { cert: FILE, key: FILE, ca: FILE }  optional; ca: mutual TLS
 * Unknown keys and bad values are errors "file:line:col: what"; every
 * problem is reported, not only the first.
 */
#ifndef TROIKA_COORD_CONF_H
#define TROIKA_COORD_CONF_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define COORD_CONF_HEARTBEAT_MS 5000
#define COORD_CONF_MIN_HEARTBEAT_MS 100
#define COORD_CONF_MAX_HEARTBEAT_MS (60 * 60 * 1000)

struct coord_conf {
	char *name;
	char *listen;
	char *listen_host;
	int listen_port;
	char *metrics_listen; /* NULL: no HTTP endpoint */
	int64_t heartbeat_ms;
	int64_t agent_timeout_ms;
	int log_level;
	enum log_target log_target;
	char *tls_cert; /* all NULL: h2c */
	char *tls_key;
	char *tls_ca;
};

/*
 * Parse a config text; fname names it in errors. Returns 0 with *ret_conf
 * set, or a negative errno: -EINVAL with every problem in *ret_errors
 * (lines "fname:line:col: what\n", the caller frees it), -ENOMEM.
 */
int coord_conf_parse(const char *buf, size_t len, const char *fname,
    struct coord_conf **ret_conf, char **ret_errors);

/* Read and parse a file; as above, and -errno when it cannot be read. */
int coord_conf_load(
    const char *path, struct coord_conf **ret_conf, char **ret_errors);

/* The effective configuration, as YAML that loads back to the same. */
void coord_conf_print(const struct coord_conf *conf, FILE *out);

void coord_conf_free(struct coord_conf *conf);


#endif
