/*
 * troikactl's command line: global options, a command, its options and
 * operands, in any order (options may follow the command, as in
 * `troikactl status --json`). Every mistake is a usage error (exit 2)
 * with one line saying what was wrong.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "parse.h"

enum {
	OPT_COORDINATOR = 256,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_HELP,
	OPT_VERSION,
	OPT_FOLLOW,
	OPT_AFTER,
	OPT_NODE,
	OPT_KIND,
	OPT_LIMIT,
	OPT_BY,
	OPT_FOR,
	OPT_REASON,
	OPT_TO,
	OPT_WAIT,
};

static const struct option ctl_options[] = {
    {"coordinator", required_argument, NULL, OPT_COORDINATOR},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls", no_argument, NULL, OPT_TLS},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"after", required_argument, NULL, OPT_AFTER},
    {"node", required_argument, NULL, OPT_NODE},
    {"kind", required_argument, NULL, OPT_KIND},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"by", required_argument, NULL, OPT_BY},
    {"for", required_argument, NULL, OPT_FOR},
    {"reason", required_argument, NULL, OPT_REASON},
    {"to", required_argument, NULL, OPT_TO},
    {"wait", no_argument, NULL, OPT_WAIT},
    {NULL, 0, NULL, 0},
};

void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: troikactl [options] status [NODE...]\n"
	    "       troikactl [options] events [--limit N | --follow | --after "
	    "SEQ]\n"
	    "                                 [--node NODE]... [--kind "
	    "KIND]...\n"
	    "       troikactl [options] actions [list] [--limit N] [NODE...]\n"
	    "       troikactl [options] actions ack ID [--by WHO]\n"
	    "       troikactl [options] maintenance [list]\n"
	    "       troikactl [options] maintenance on [NODE [CHECK]] --for "
	    "DURATION\n"
	    "                                      [--reason TEXT] [--by WHO]\n"
	    "       troikactl [options] maintenance off [NODE [CHECK]]\n"
	    "       troikactl [options] switchover CLUSTER [--to NODE]\n"
	    "                                      [--wait] [--by WHO]\n"
	    "\n"
	    "options:\n"
	    "  --coordinator HOST:PORT  a coordinator to ask; repeat it or "
	    "separate with\n"
	    "                           commas: each is tried in turn until "
	    "one answers\n"
	    "                           (default: $TROIKA_COORDINATOR, "
	    "else " CTL_DEFAULT_COORDINATOR ")\n"
	    "  --timeout DURATION       per coordinator: 500ms, 5s, 1m or "
	    "plain seconds\n"
	    "                           (default 5s)\n"
	    "  --json                   JSON for scripts instead of tables\n"
	    "  --tls                    TLS, server checked against the "
	    "system's CAs\n"
	    "  --tls-ca FILE            TLS, server checked against this CA\n"
	    "  --tls-cert FILE --tls-key FILE\n"
	    "                           a client certificate (mutual TLS)\n"
	    "  --help, --version\n"
	    "\n"
	    "events:\n"
	    "  (no option)              the history, oldest first: its newest "
	    "--limit N\n"
	    "                           events (default 100)\n"
	    "  --follow                 this coordinator's kept events, then "
	    "new ones\n"
	    "                           until Ctrl-C\n"
	    "  --after SEQ              this coordinator's events after "
	    "sequence number SEQ\n"
	    "  --node NODE, --kind KIND only these (repeat, or separate with "
	    "commas)\n"
	    "\n"
	    "actions, maintenance:\n"
	    "  --limit N                at most N actions (or events), newest "
	    "first\n"
	    "                           (default 100)\n"
	    "  --by WHO                 who acknowledges or starts "
	    "maintenance (default\n"
	    "                           user@host)\n"
	    "  --for DURATION           how long maintenance lasts, e.g. 30m, "
	    "2h\n"
	    "  --reason TEXT            why, for the record\n"
	    "\n"
	    "switchover (a redis cluster's primary role to a replica):\n"
	    "  --to NODE                the new primary (default: the replica "
	    "with the\n"
	    "                           highest offset)\n"
	    "  --wait                   until it ends; exit 0 only if it "
	    "SUCCEEDED\n"
	    "  --by WHO                 who asks, for the record\n"
	    "\n"
	    "exit status: 0 ok, 1 the coordinator answered an error or none "
	    "answered,\n"
	    "2 usage error\n");
}

static int
ctl_args_error(FILE *err, const char *fmt, const char *what)
{
	fprintf(err, "troikactl: ");
	fprintf(err, fmt, what);
	fprintf(err, "\ntry 'troikactl --help'\n");
	return CTL_EXIT_USAGE;
}

/* Append each comma-separated item of s to a list of copies. */
static int
ctl_args_split(const char *s, char ***list, size_t *n)
{
	const char *p = s;

	for (;;) {
		size_t len = strcspn(p, ",");
		char **l;

		if (len == 0)
			return -EINVAL;
		if ((l = reallocarray(*list, *n + 1, sizeof(*l))) == NULL)
			return -ENOMEM;
		*list = l;
		if ((l[*n] = strndup(p, len)) == NULL)
			return -ENOMEM;
		(*n)++;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

/* host:port, or a host alone for the default port. */
static int
ctl_args_target(struct ctl_target *t, const char *s)
{
	int r;

	if ((t->text = strdup(s)) == NULL)
		return -ENOMEM;
	r = parse_hostport(s, t->host, sizeof(t->host), 1, &t->port);
	if (r == -EINVAL && strchr(s, ':') == NULL && *s != '\0' &&
	    strlen(s) < sizeof(t->host) && strpbrk(s, " /[]") == NULL) {
		strcpy(t->host, s);
		t->port = CTL_DEFAULT_PORT;
		r = 0;
	}
	return r;
}

static int
ctl_args_targets(
    struct ctl_opts *o, const char *value, const char *source, FILE *err)
{
	char **items = NULL;
	size_t n = 0;
	int r;

	if ((r = ctl_args_split(value, &items, &n)) == 0) {
		struct ctl_target *t;

		t = reallocarray(o->targets, o->ntargets + n, sizeof(*t));
		if (t == NULL)
			r = -ENOMEM;
		else {
			o->targets = t;
			for (size_t i = 0; i < n && r == 0; i++) {
				memset(&t[o->ntargets], 0, sizeof(*t));
				r = ctl_args_target(
				    &t[o->ntargets++], items[i]);
				if (r != 0)
					fprintf(err,
					    "troikactl: bad "
					    "coordinator '%s' in %s: expected "
					    "HOST:PORT\n",
					    items[i], source);
			}
		}
	} else
		fprintf(err, "troikactl: bad coordinator list '%s' in %s\n",
		    value, source);
	if (r != 0)
		fprintf(err, "try 'troikactl --help'\n");
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return r;
}

/* A duration with a unit, or plain seconds. */
static int
ctl_args_timeout(const char *s, int64_t *ret_ms)
{
	int64_t v;

	if (parse_int64(s, &v) == 0) {
		if (v <= 0 || v > INT64_MAX / 1000)
			return -ERANGE;
		*ret_ms = v * 1000;
		return 0;
	}
	if (parse_duration_ms(s, &v) != 0 || v <= 0)
		return -EINVAL;
	*ret_ms = v;
	return 0;
}

static int
ctl_args_seq(const char *s, uint64_t *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -EINVAL : 0;
}

static int
ctl_args_command(struct ctl_opts *o, const char *name)
{
	if (strcmp(name, "status") == 0)
		o->command = CTL_CMD_STATUS;
	else if (strcmp(name, "events") == 0)
		o->command = CTL_CMD_EVENTS;
	else if (strcmp(name, "actions") == 0)
		o->command = CTL_CMD_ACTIONS;
	else if (strcmp(name, "maintenance") == 0)
		o->command = CTL_CMD_MAINTENANCE;
	else if (strcmp(name, "switchover") == 0)
		o->command = CTL_CMD_SWITCHOVER;
	else
		return -EINVAL;
	return 0;
}

/* The command, then its operands. */
static int
ctl_args_operand(struct ctl_opts *o, char *arg)
{
	char **a;

	if (o->command == CTL_CMD_NONE)
		return ctl_args_command(o, arg);
	if ((a = reallocarray(o->args, o->nargs + 1, sizeof(*a))) == NULL)
		return -ENOMEM;
	o->args = o->args_alloc = a;
	a[o->nargs++] = arg;
	return 0;
}

/* Options that belong to some commands only. */
enum {
	CTL_FOR_EVENTS = 1 << 0,
	CTL_FOR_ACTIONS_LIST = 1 << 1,
	CTL_FOR_ACK = 1 << 2,
	CTL_FOR_MAINT_ON = 1 << 3,
	CTL_FOR_SWITCHOVER = 1 << 4,
};

struct ctl_args_used {
	const char *name;
	unsigned where;
};

/* Where each command-specific option may go. */
static unsigned
ctl_args_where(int opt)
{
	switch (opt) {
	case OPT_FOLLOW:
	case OPT_AFTER:
	case OPT_NODE:
	case OPT_KIND:
		return CTL_FOR_EVENTS;
	case OPT_LIMIT:
		return CTL_FOR_ACTIONS_LIST | CTL_FOR_EVENTS;
	case OPT_BY:
		return CTL_FOR_ACK | CTL_FOR_MAINT_ON | CTL_FOR_SWITCHOVER;
	case OPT_TO:
	case OPT_WAIT:
		return CTL_FOR_SWITCHOVER;
	case OPT_FOR:
	case OPT_REASON:
		return CTL_FOR_MAINT_ON;
	}
	return 0;
}

static const char *
ctl_args_where_str(unsigned where)
{
	switch (where) {
	case CTL_FOR_EVENTS:
		return "events";
	case CTL_FOR_ACTIONS_LIST:
		return "actions list";
	case CTL_FOR_ACTIONS_LIST | CTL_FOR_EVENTS:
		return "actions list and events";
	case CTL_FOR_ACK | CTL_FOR_MAINT_ON | CTL_FOR_SWITCHOVER:
		return "actions ack, maintenance on and switchover";
	case CTL_FOR_SWITCHOVER:
		return "switchover";
	case CTL_FOR_MAINT_ON:
		return "maintenance on";
	}
	return "?";
}

/*
 * The subcommand word of actions and maintenance, and the operands each
 * takes. Returns 0 or CTL_EXIT_USAGE (said why).
 */
static int
ctl_args_sub(struct ctl_opts *o, FILE *err)
{
	const char *word = o->nargs > 0 ? o->args[0] : NULL;
	size_t max = 0;

	if (o->command == CTL_CMD_STATUS)
		return 0;
	if (o->command == CTL_CMD_SWITCHOVER) {
		if (o->nargs != 1)
			return ctl_args_error(
			    err, "%s", "switchover takes one cluster name");
		return 0;
	}
	if (o->command == CTL_CMD_EVENTS) {
		if (o->nargs > 0)
			return ctl_args_error(err,
			    "events takes no operands (use --node): '%s'",
			    o->args[0]);
		return 0;
	}
	o->sub = CTL_SUB_LIST;
	if (word != NULL && strcmp(word, "list") == 0)
		;
	else if (word != NULL && o->command == CTL_CMD_ACTIONS &&
	    strcmp(word, "ack") == 0)
		o->sub = CTL_SUB_ACK;
	else if (word != NULL && o->command == CTL_CMD_MAINTENANCE &&
	    strcmp(word, "on") == 0)
		o->sub = CTL_SUB_ON;
	else if (word != NULL && o->command == CTL_CMD_MAINTENANCE &&
	    strcmp(word, "off") == 0)
		o->sub = CTL_SUB_OFF;
	else if (o->command == CTL_CMD_ACTIONS)
		return 0; /* actions NODE...: list */
	else if (word != NULL)
		return ctl_args_error(err,
		    "unknown maintenance command '%s' (list, on, off)", word);
	else
		return 0;
	/* Drop the word: what is left are the operands. */
	o->args++;
	o->nargs--;
	switch (o->sub) {
	case CTL_SUB_LIST:
		max = o->command == CTL_CMD_ACTIONS ? SIZE_MAX : 0;
		break;
	case CTL_SUB_ACK:
		if (o->nargs != 1)
			return ctl_args_error(
			    err, "%s", "actions ack takes one action id");
		return 0;
	case CTL_SUB_ON:
	case CTL_SUB_OFF:
		max = 2;
		break;
	}
	if (o->nargs > max)
		return ctl_args_error(
		    err, "too many operands: '%s'", o->args[max]);
	return 0;
}

int
ctl_args_parse(struct ctl_opts *o, int argc, char **argv,
    const char *env_coordinator, FILE *err)
{
	struct ctl_args_used used[16];
	size_t nused = 0;
	unsigned here;
	int c, r, longindex = 0;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	/* Our own messages; a leading '+' would stop at the command. */
	opterr = 0;
	optind = 0;
	/*
	 * "-": operands come back in order as 1, so options may follow the
	 * command; ":": a missing value is ':', not '?'.
	 */
	while ((c = getopt_long(argc, argv, "-:", ctl_options, &longindex)) !=
	    -1) {
		switch (c) {
		case 1:
			if (ctl_args_operand(o, optarg) != 0)
				return ctl_args_error(err,
				    o->command == CTL_CMD_NONE
				        ? "unknown command '%s'"
				        : "out of memory (%s)",
				    optarg);
			continue;
		case OPT_COORDINATOR:
			if (ctl_args_targets(o, optarg, "--coordinator", err) !=
			    0)
				return CTL_EXIT_USAGE;
			continue;
		case OPT_TIMEOUT:
			if (ctl_args_timeout(optarg, &o->timeout_ms) != 0)
				return ctl_args_error(err,
				    "bad --timeout '%s': expected a duration "
				    "such as 500ms, 5s or 1m",
				    optarg);
			continue;
		case OPT_JSON:
			o->json = 1;
			continue;
		case OPT_TLS:
			o->tls = 1;
			continue;
		case OPT_TLS_CA:
			o->tls = 1;
			o->tls_ca = optarg;
			continue;
		case OPT_TLS_CERT:
			o->tls = 1;
			o->tls_cert = optarg;
			continue;
		case OPT_TLS_KEY:
			o->tls_key = optarg;
			continue;
		case OPT_HELP:
			o->help = 1;
			continue;
		case OPT_VERSION:
			o->version = 1;
			continue;
		case OPT_FOLLOW:
			o->follow = 1;
			break;
		case OPT_AFTER:
			if (ctl_args_seq(optarg, &o->after) != 0)
				return ctl_args_error(err,
				    "bad --after '%s': expected a sequence "
				    "number",
				    optarg);
			o->after_set = 1;
			break;
		case OPT_NODE:
			if (ctl_args_split(optarg, &o->nodes, &o->nnodes) != 0)
				return ctl_args_error(
				    err, "bad --node '%s'", optarg);
			break;
		case OPT_KIND:
			if (ctl_args_split(optarg, &o->kinds, &o->nkinds) != 0)
				return ctl_args_error(
				    err, "bad --kind '%s'", optarg);
			break;
		case OPT_LIMIT: {
			uint64_t v;

			if (ctl_args_seq(optarg, &v) != 0 || v == 0 ||
			    v > UINT32_MAX)
				return ctl_args_error(err,
				    "bad --limit '%s': expected a number "
				    "above 0",
				    optarg);
			o->limit = (uint32_t)v;
			break;
		}
		case OPT_BY:
			o->by = optarg;
			break;
		case OPT_FOR:
			if (parse_duration_ms(optarg, &o->for_ms) != 0 ||
			    o->for_ms <= 0)
				return ctl_args_error(err,
				    "bad --for '%s': expected a duration "
				    "such as 30m or 2h",
				    optarg);
			break;
		case OPT_REASON:
			o->reason = optarg;
			break;
		case OPT_TO:
			o->to = optarg;
			break;
		case OPT_WAIT:
			o->wait = 1;
			break;
		case ':':
			return ctl_args_error(
			    err, "option %s needs a value", argv[optind - 1]);
		default:
			return ctl_args_error(
			    err, "unknown option %s", argv[optind - 1]);
		}
		/* A command-specific option: checked once the command is. */
		if (nused < sizeof(used) / sizeof(used[0])) {
			used[nused].name = ctl_options[longindex].name;
			used[nused++].where = ctl_args_where(c);
		}
	}
	/* After "--", operands only. */
	for (; optind < argc; optind++)
		if (ctl_args_operand(o, argv[optind]) != 0)
			return ctl_args_error(err,
			    o->command == CTL_CMD_NONE ? "unknown command '%s'"
			                               : "out of memory (%s)",
			    argv[optind]);
	if (o->help || o->version)
		return 0;
	if (o->command == CTL_CMD_NONE)
		return ctl_args_error(err, "%s", "no command given");
	if ((r = ctl_args_sub(o, err)) != 0)
		return r;
	here = o->command == CTL_CMD_EVENTS ? CTL_FOR_EVENTS
	    : o->command == CTL_CMD_ACTIONS
	    ? (o->sub == CTL_SUB_ACK ? CTL_FOR_ACK : CTL_FOR_ACTIONS_LIST)
	    : o->command == CTL_CMD_MAINTENANCE && o->sub == CTL_SUB_ON
	    ? CTL_FOR_MAINT_ON
	    : o->command == CTL_CMD_SWITCHOVER ? CTL_FOR_SWITCHOVER
	                                       : 0;
	for (size_t i = 0; i < nused; i++) {
		char msg[128];

		if (used[i].where & here)
			continue;
		snprintf(msg, sizeof(msg), "--%s is an option of %s only",
		    used[i].name, ctl_args_where_str(used[i].where));
		return ctl_args_error(err, "%s", msg);
	}
	/* The history is listed (ListEvents); a watch has no limit. */
	if (o->command == CTL_CMD_EVENTS && o->limit > 0 &&
	    (o->follow || o->after_set))
		return ctl_args_error(err, "%s",
		    "--limit lists the history: not with --follow or --after");
	if (o->command == CTL_CMD_MAINTENANCE && o->sub == CTL_SUB_ON &&
	    o->for_ms == 0)
		return ctl_args_error(
		    err, "%s", "maintenance on needs --for DURATION");
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return ctl_args_error(
		    err, "%s", "--tls-cert and --tls-key go together");
	if (o->ntargets == 0) {
		const char *def =
		    env_coordinator != NULL && *env_coordinator != '\0'
		    ? env_coordinator
		    : CTL_DEFAULT_COORDINATOR;

		if (ctl_args_targets(o, def, "$TROIKA_COORDINATOR", err) != 0)
			return CTL_EXIT_USAGE;
	}
	return 0;
}

void
ctl_opts_free(struct ctl_opts *o)
{
	for (size_t i = 0; i < o->ntargets; i++)
		free(o->targets[i].text);
	free(o->targets);
	free(o->args_alloc);
	for (size_t i = 0; i < o->nnodes; i++)
		free(o->nodes[i]);
	free(o->nodes);
	for (size_t i = 0; i < o->nkinds; i++)
		free(o->kinds[i]);
	free(o->kinds);
	memset(o, 0, sizeof(*o));
}
