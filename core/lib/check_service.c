/* start/stop/restart of a check's service, through svc.c. */
#include "check_host_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "conf.h"
#include "log.h"

static void
service_call_unlink(struct service_call *sc)
{
	struct service_call **pp;

	for (pp = &sc->check->service_calls; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == sc) {
			*pp = sc->next;
			return;
		}
	}
}

static void
service_call_done_cb(int ok, const char *message, void *arg)
{
	struct service_call *sc = arg;
	troika_service_done_cb done = sc->done;
	void *done_arg = sc->arg;

	log_msg(ok ? LOG_INFO : LOG_WARNING, "check=%s: service: %s",
	    sc->check->name, message);
	service_call_unlink(sc);
	free(sc);
	done(ok, message, done_arg);
}

int
check_service_control(struct troika_instance *c, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg)
{
	struct service_call *sc;
	int err = 0;

	if (c->service.backend == SVC_NONE)
		return -ENOENT;
	if (!pthread_equal(pthread_self(), c->host->loop_thread)) {
		/* A blocking plugin's worker: the host's lists are the loop's. */
		log_warnx("check=%s plugin=%s: service_control called off the "
		    "loop thread; refused (use the host's own start/stop/restart)",
		    c->name, c->plugin_name);
		return -EPERM;
	}
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return -ENOMEM;
	sc->check = c;
	sc->done = done;
	sc->arg = arg;
	log_info("check=%s: service %s", c->name, op);
	sc->op = svc_control(c->host->base, &c->service, op,
	    timeout_ms > 0 ? timeout_ms : c->timeout_ms, service_call_done_cb,
	    sc, &err);
	if (sc->op == NULL) {
		free(sc);
		return err;
	}
	sc->next = c->service_calls;
	c->service_calls = sc;
	return 0;
}

/* Cancel the service call made for arg (a built-in action's task). */
void
check_service_cancel_arg(struct troika_instance *c, void *arg)
{
	for (struct service_call *sc = c->service_calls; sc != NULL; sc = sc->next) {
		if (sc->arg == arg) {
			svc_op_cancel(sc->op);
			service_call_unlink(sc);
			free(sc);
			return;
		}
	}
}

void
check_service_cancel_all(struct troika_instance *c)
{
	struct service_call *sc, *next;

	for (sc = c->service_calls; sc != NULL; sc = next) {
		next = sc->next;
		svc_op_cancel(sc->op);
		free(sc);
	}
	c->service_calls = NULL;
}

void
check_service_spec_free(struct svc_spec *s)
{
	conf_strv_free(s->start, s->nstart);
	conf_strv_free(s->stop, s->nstop);
	conf_strv_free(s->restart, s->nrestart);
	free(s->unit);
	memset(s, 0, sizeof(*s));
}

int
check_service_spec_copy(struct svc_spec *d, const struct conf_service *cs)
{
	memset(d, 0, sizeof(*d));
	if (cs->manager == CONF_SERVICE_NONE)
		return 0;
	if (cs->manager == CONF_SERVICE_SYSTEMD) {
		d->backend = SVC_SYSTEMD;
		return (d->unit = strdup(cs->unit)) != NULL ? 0 : -ENOMEM;
	}
	d->backend = SVC_EXEC;
	d->start = check_strv_dup(cs->start, cs->nstart);
	d->nstart = d->start ? cs->nstart : 0;
	d->stop = check_strv_dup(cs->stop, cs->nstop);
	d->nstop = d->stop ? cs->nstop : 0;
	d->restart = check_strv_dup(cs->restart, cs->nrestart);
	d->nrestart = d->restart ? cs->nrestart : 0;
	if (d->nstart != cs->nstart || d->nstop != cs->nstop ||
	    d->nrestart != cs->nrestart) {
		check_service_spec_free(d);
		return -ENOMEM;
	}
	return 0;
}
