/*
 * Commands from coordinators (troika.v1.Command), run through the check
 * host's actions. The agent is where fencing is enforced, since only it
 * touches the services: a command whose token is lower than the highest
 * this agent has seen (from any coordinator's Welcome or command) is
 * refused, so a leader that lost its lease can never act; a command past
 * its deadline is refused; a command id runs at most once, and a repeated
 * id is answered with the final result kept for it (the newest
 * CMD_KEPT_IDS are kept).
 *
 * Answers go back through the sender the uplink gave with the command; a
 * sender that went away is forgotten, and the coordinator gets the kept
 * answer when it asks again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "agent.h"
#include "check_host.h"
#include "log.h"
#include "metrics.h"
#include "troika/v1/agent.pb-c.h"

#define CMD_KEPT_IDS 256
#define CMD_MAX_ARGS 16
#define CMD_OUTCOMES \
	(TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_EXPIRED + 1)

/* A command being run, or run: what answering it again needs. */
struct agent_command {
	char *id;
	void *sender;               /* who asked; NULL once it is gone */
	struct troika_task *task;   /* running; NULL once done */
	uint64_t token;
	uint8_t *final;             /* packed AgentMessage, once done */
	size_t final_len;
	struct agent_commands *cmds;
	struct agent_command *next;
};

struct agent_commands {
	struct check_host *checks;
	agent_command_send_fn send;
	uint64_t token;                 /* the highest seen */
	struct agent_command *list;     /* newest first */
	uint64_t by_outcome[CMD_OUTCOMES];
};

static uint64_t
cmd_wall_nano(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct agent_commands *
agent_commands_new(struct check_host *checks, agent_command_send_fn send)
{
	struct agent_commands *cmds;

	if ((cmds = calloc(1, sizeof(*cmds))) == NULL)
		return NULL;
	cmds->checks = checks;
	cmds->send = send;
	return cmds;
}

static void
cmd_free(struct agent_command *c)
{
	if (c == NULL)
		return;
	if (c->task != NULL)
		check_host_action_forget(c->task);
	free(c->id);
	free(c->final);
	free(c);
}

void
agent_commands_free(struct agent_commands *cmds)
{
	if (cmds == NULL)
		return;
	while (cmds->list != NULL) {
		struct agent_command *c = cmds->list;

		cmds->list = c->next;
		cmd_free(c);
	}
	free(cmds);
}

uint64_t
agent_commands_token(const struct agent_commands *cmds)
{
	return cmds->token;
}

void
agent_commands_see_token(struct agent_commands *cmds, uint64_t token)
{
	if (token > cmds->token)
		cmds->token = token;
}

void
agent_commands_sender_gone(struct agent_commands *cmds, void *sender)
{
	for (struct agent_command *c = cmds->list; c != NULL; c = c->next)
		if (c->sender == sender)
			c->sender = NULL;
}

static struct agent_command *
cmd_find(struct agent_commands *cmds, const char *id)
{
	for (struct agent_command *c = cmds->list; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

/* Keep the newest CMD_KEPT_IDS commands; older finished ones go. */
static void
cmd_trim(struct agent_commands *cmds)
{
	struct agent_command **cp = &cmds->list;
	size_t n = 0;

	while (*cp != NULL) {
		struct agent_command *c = *cp;

		if (++n > CMD_KEPT_IDS && c->task == NULL) {
			*cp = c->next;
			cmd_free(c);
			continue;
		}
		cp = &c->next;
	}
}

/*
 * Answer a command. A final outcome is packed and kept with the command
 * (when there is one) so a repeated id gets the same answer.
 */
static void
cmd_answer(struct agent_commands *cmds, void *sender, struct agent_command *c,
    const char *id, uint64_t token, Troika__V1__CommandOutcome outcome,
    const char *message, const struct action_outcome *o)
{
	Troika__V1__AgentMessage m = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__CommandResult cr = TROIKA__V1__COMMAND_RESULT__INIT;
	Troika__V1__Label *fields = NULL, **fieldp = NULL;
	uint8_t *buf = NULL;
	size_t len, nf = o != NULL ? o->nfields : 0;

	if (nf > 0) {
		fields = calloc(nf, sizeof(*fields));
		fieldp = calloc(nf, sizeof(*fieldp));
		if (fields == NULL || fieldp == NULL)
			nf = 0;
	}
	/* protobuf-c declares char *; it only reads while packing. */
	for (size_t i = 0; i < nf; i++) {
		troika__v1__label__init(&fields[i]);
		fields[i].name = (char *)(uintptr_t)o->fields[i].name;
		fields[i].value = (char *)(uintptr_t)o->fields[i].value;
		fieldp[i] = &fields[i];
	}
	cr.id = (char *)(uintptr_t)id;
	cr.outcome = outcome;
	cr.message = (char *)(uintptr_t)(message != NULL ? message : "");
	cr.fields = fieldp;
	cr.n_fields = nf;
	cr.duration_nano = o != NULL && o->duration > 0 ?
	    (uint64_t)(o->duration * 1e9) : 0;
	cr.time_unix_nano = cmd_wall_nano();
	cr.fencing_token = token;
	m.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_COMMAND_RESULT;
	m.command_result = &cr;
	len = protobuf_c_message_get_packed_size(&m.base);
	if ((buf = malloc(len > 0 ? len : 1)) != NULL) {
		protobuf_c_message_pack(&m.base, buf);
		/*
		 * An answer that finds the stream full or gone is not lost:
		 * a repeated id gets it again.
		 */
		if (sender != NULL && cmds->send(sender, buf, len) < 0)
			log_warnx("command %s: answer not sent now; the "
			    "coordinator gets it when it asks again", id);
	}
	if ((unsigned)outcome < CMD_OUTCOMES)
		cmds->by_outcome[outcome]++;
	if (c != NULL && outcome != TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_ACCEPTED) {
		free(c->final);
		c->final = buf;
		c->final_len = buf != NULL ? len : 0;
		buf = NULL;
	}
	free(buf);
	free(fields);
	free(fieldp);
}

static const char *
cmd_outcome_name(Troika__V1__CommandOutcome o)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &troika__v1__command_outcome__descriptor, (int)o);

	return v != NULL ? v->name : "?";
}

static void
cmd_done(const struct action_outcome *o, void *arg)
{
	struct agent_command *c = arg;
	Troika__V1__CommandOutcome outcome;

	c->task = NULL;
	if (o->timed_out || o->status == TROIKA_STATUS_UNKNOWN ||
	    o->status == TROIKA_STATUS_WARNING)
		outcome = TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_INDETERMINATE;
	else if (o->status == TROIKA_STATUS_OK)
		outcome = TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_SUCCEEDED;
	else
		outcome = TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_FAILED;
	log_info("command %s: %s (%s)", c->id, cmd_outcome_name(outcome),
	    o->message != NULL ? o->message : "");
	cmd_answer(c->cmds, c->sender, c, c->id, c->token, outcome, o->message,
	    o);
}

void
agent_commands_handle(struct agent_commands *cmds, void *sender,
    const char *from, const Troika__V1__Command *cmd)
{
	struct agent_command *c;
	const char *err = NULL;
	int r;

	if (cmd->id == NULL || cmd->id[0] == '\0') {
		log_warnx("coordinator %s: a command without an id; ignored",
		    from);
		return;
	}
	if ((c = cmd_find(cmds, cmd->id)) != NULL) {
		/* Run at most once: repeat the final answer, if any yet. */
		if (c->final != NULL)
			(void)cmds->send(sender, c->final, c->final_len);
		c->sender = sender;
		return;
	}
	if (cmd->fencing_token < cmds->token) {
		char msg[128];

		snprintf(msg, sizeof(msg), "fencing token %llu is lower than "
		    "%llu, the highest seen",
		    (unsigned long long)cmd->fencing_token,
		    (unsigned long long)cmds->token);
		log_warnx("coordinator %s: command %s refused: %s", from,
		    cmd->id, msg);
		cmd_answer(cmds, sender, NULL, cmd->id, cmd->fencing_token,
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_STALE_TOKEN,
		    msg, NULL);
		return;
	}
	cmds->token = cmd->fencing_token;
	if (cmd->deadline_unix_nano != 0 &&
	    cmd_wall_nano() > cmd->deadline_unix_nano) {
		cmd_answer(cmds, sender, NULL, cmd->id, cmd->fencing_token,
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_EXPIRED,
		    "arrived after its deadline", NULL);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->id = strdup(cmd->id)) == NULL) {
		free(c);
		cmd_answer(cmds, sender, NULL, cmd->id, cmd->fencing_token,
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_FAILED,
		    "out of memory", NULL);
		return;
	}
	c->cmds = cmds;
	c->sender = sender;
	c->token = cmd->fencing_token;
	c->next = cmds->list;
	cmds->list = c;
	log_info("command %s from %s (token %llu): %s %s", cmd->id,
	    cmd->coordinator != NULL && cmd->coordinator[0] != '\0' ?
	    cmd->coordinator : from, (unsigned long long)cmd->fencing_token,
	    cmd->check, cmd->action);
	if (cmd->n_args > CMD_MAX_ARGS) {
		r = -EINVAL;
		err = "too many arguments";
	} else {
		r = check_host_action(cmds->checks, cmd->check, cmd->action,
		    (const char *const *)cmd->args, cmd->n_args,
		    cmd->timeout_nano > 0 ?
		    (int64_t)(cmd->timeout_nano / 1000000) : 0,
		    cmd_done, c, &c->task, &err);
	}
	if (r < 0) {
		Troika__V1__CommandOutcome o =
		    r == -ENOENT ?
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_UNKNOWN_CHECK :
		    r == -EOPNOTSUPP ?
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_UNKNOWN_ACTION :
		    r == -EINVAL ?
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_REJECTED_INVALID_ARGUMENTS :
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_FAILED;

		c->task = NULL;
		if (err == NULL)
			err = strerror(-r);
		log_warnx("command %s refused: %s", cmd->id, err);
		cmd_answer(cmds, sender, c, cmd->id, cmd->fencing_token, o, err,
		    NULL);
	} else {
		cmd_answer(cmds, sender, c, cmd->id, cmd->fencing_token,
		    TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_ACCEPTED,
		    "started", NULL);
	}
	cmd_trim(cmds);
}

void
agent_commands_metrics(const struct agent_commands *cmds, struct evbuffer *out)
{
	metrics_family(out, "troika_agent_fencing_token", "gauge",
	    "The highest fencing token seen; commands with a lower one are "
	    "refused.");
	metrics_sample(out, "troika_agent_fencing_token", NULL, 0, NULL,
	    (double)cmds->token);
	metrics_family(out, "troika_agent_commands_total", "counter",
	    "Coordinator commands answered, by outcome (accepted is the "
	    "interim answer of a command that ran).");
	for (unsigned o = 1; o < CMD_OUTCOMES; o++) {
		const char *name = cmd_outcome_name((Troika__V1__CommandOutcome)o);
		char lower[64];
		struct troika_label l = { "outcome", lower };
		size_t k;

		/* COMMAND_OUTCOME_REJECTED_STALE_TOKEN -> rejected_stale_token */
		if (strncmp(name, "COMMAND_OUTCOME_", 16) == 0)
			name += 16;
		for (k = 0; name[k] != '\0' && k < sizeof(lower) - 1; k++)
			lower[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ?
			    name[k] - 'A' + 'a' : name[k]);
		lower[k] = '\0';
		metrics_sample(out, "troika_agent_commands_total", &l, 1, NULL,
		    (double)cmds->by_outcome[o]);
	}
}
