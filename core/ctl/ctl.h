/*
 * troikactl: the options of one invocation (ctl_args.c) and the commands
 * (one file each: ctl_status.c, ctl_events.c). ctl_main.c parses, then
 * runs one command; a command returns the exit status.
 */
#ifndef TROIKA_CTL_H
#define TROIKA_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "troika/v1/admin.pb-c.h"

struct evbuffer;

/* Exit statuses (README.md). */
#define CTL_EXIT_OK 0
/* The coordinator answered an error, or none answered. */
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

#define CTL_DEFAULT_COORDINATOR "127.0.0.1:7443"
#define CTL_DEFAULT_PORT 7443
#define CTL_DEFAULT_TIMEOUT_MS 5000

enum ctl_command {
	CTL_CMD_NONE = 0,
	CTL_CMD_STATUS,
	CTL_CMD_EVENTS,
	CTL_CMD_ACTIONS,
	CTL_CMD_MAINTENANCE,
	CTL_CMD_SWITCHOVER,
};

/* What a command with subcommands (actions, maintenance) is to do. */
enum ctl_sub {
	CTL_SUB_LIST = 0, /* actions [list], maintenance [list] */
	CTL_SUB_ACK,      /* actions ack ID */
	CTL_SUB_ON,       /* maintenance on [NODE [CHECK]] */
	CTL_SUB_OFF,      /* maintenance off [NODE [CHECK]] */
};

struct ctl_target {
	char *text; /* as given, for messages */
	char host[256];
	int port;
};

struct ctl_opts {
	struct ctl_target *targets;
	size_t ntargets;
	int64_t timeout_ms;
	int json;
	int color; /* set by main: stdout is a tty and NO_COLOR is unset */
	int tls;   /* --tls, or implied by --tls-ca / --tls-cert */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	int help;
	int version;
	enum ctl_command command;
	enum ctl_sub sub;
	/*
	 * Operands after the command and its subcommand word: status and
	 * actions: node names; actions ack: the id; maintenance on/off:
	 * [NODE [CHECK]]; switchover: the cluster. Pointers into argv.
	 */
	char **args;
	size_t nargs;
	char **args_alloc; /* what args was allocated as */
	/* actions */
	uint32_t limit; /* 0: the coordinator's default */
	const char *by; /* actions ack, maintenance on: who */
	/* maintenance on */
	int64_t for_ms;
	const char *reason;
	/* switchover */
	const char *to;
	int wait;
	/* events */
	int follow;
	int after_set;
	uint64_t after;
	char **nodes; /* owned copies (a comma-separated value is split) */
	size_t nnodes;
	char **kinds;
	size_t nkinds;
};

/*
 * Parse argv. env_coordinator is $TROIKA_COORDINATOR (NULL if unset),
 * used when no --coordinator is given. Usage errors are written to err
 * as "troikactl: what". Returns 0 or CTL_EXIT_USAGE; o is filled either
 * way and must be freed with ctl_opts_free().
 */
int ctl_args_parse(struct ctl_opts *o, int argc, char **argv,
    const char *env_coordinator, FILE *err);
void ctl_opts_free(struct ctl_opts *o);
void ctl_usage(FILE *f);

/* The commands: each returns an exit status. */
int ctl_status_run(const struct ctl_opts *o);
int ctl_events_run(const struct ctl_opts *o);
int ctl_actions_run(const struct ctl_opts *o);
int ctl_maint_run(const struct ctl_opts *o);
int ctl_switch_run(const struct ctl_opts *o);

/*
 * Output, apart from the network so the unit tests can drive it.
 * ctl_status_write(): the human tables or the JSON document of one
 * GetStatus answer. ctl_event_write(): one line for one event.
 */
int ctl_status_write(const Troika__V1__GetStatusResponse *rep, int json,
    int color, struct evbuffer *out);
int ctl_event_write(
    const Troika__V1__Event *e, int json, int color, struct evbuffer *out);
/* A table of action records (ListActions, AcknowledgeAction). */
int ctl_actions_write(Troika__V1__ActionRecord *const *recs, size_t n,
    int color, struct evbuffer *out);
/* A table of maintenance in force; ages counted from now_ns. */
int ctl_maint_write(Troika__V1__Maintenance *const *m, size_t n,
    uint64_t now_ns, int color, struct evbuffer *out);

/* Who an operator is, for records: user@host. */
void ctl_whoami(char *buf, size_t len);

/* Write all of buf to fd (stdout): 0 or a negative errno. */
int ctl_flush(struct evbuffer *buf, int fd);

#endif
