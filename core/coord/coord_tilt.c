/*
 * coord_tilt: a 100 ms tick that measures itself (coord_tilt.h). A tick
 * late by more than tilt.stall means the loop did not run for that long;
 * wall time that moved more than tilt.clock_jump away from monotonic
 * time since the last tick means someone set the clock.
 */
#include "coord_tilt.h"

#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_opinion.h"
#include "log.h"
#include "metrics.h"

#define TILT_TICK_MS 100

enum tilt_cause { TILT_STALL, TILT_CLOCK, TILT_CAUSES };

struct coord_tilt {
	struct coord *c;
	struct event *tick;
	struct event *end;
	int64_t last_mono_ms;
	int64_t last_wall_ms;
	uint64_t until_ns;
	uint64_t count[TILT_CAUSES];
};

static int64_t
tilt_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
tilt_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_tilt *t = arg;

	(void)fd;
	(void)what;
	t->until_ns = 0;
	if (t->c->opinions != NULL)
		coord_opinions_withhold(t->c->opinions, 0);
	coord_events_emit(t->c, "tilt_ended",
	    TROIKA__V1__SEVERITY__SEVERITY_INFO, NULL, NULL, NULL, 0,
	    "TILT over: forming opinions again");
}

static void
tilt_enter(struct coord_tilt *t, enum tilt_cause cause, int64_t by_ms)
{
	const struct coord_conf *conf = t->c->conf;
	struct timeval tv = { (time_t)(conf->tilt_grace_ms / 1000),
	    (suseconds_t)(conf->tilt_grace_ms % 1000) * 1000 };
	const char *const f[] = { "cause", cause == TILT_STALL ? "stall" :
	    "clock_jump" };

	t->count[cause]++;
	t->until_ns = coord_now_ns() + (uint64_t)conf->tilt_grace_ms * 1000000;
	if (t->c->opinions != NULL)
		coord_opinions_withhold(t->c->opinions, 1);
	evtimer_add(t->end, &tv);
	coord_events_emit(t->c, "tilt", TROIKA__V1__SEVERITY__SEVERITY_WARNING,
	    NULL, NULL, f, 1, "TILT: %s by %lld ms; opinions withheld for "
	    "%lld ms", cause == TILT_STALL ? "the loop stalled" :
	    "the wall clock jumped", (long long)by_ms,
	    (long long)conf->tilt_grace_ms);
}

static void
tilt_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_tilt *t = arg;
	const struct coord_conf *conf = t->c->conf;
	int64_t mono = tilt_ms(CLOCK_MONOTONIC), wall = tilt_ms(CLOCK_REALTIME);
	int64_t late = mono - t->last_mono_ms - TILT_TICK_MS;
	int64_t jump = (wall - t->last_wall_ms) - (mono - t->last_mono_ms);

	(void)fd;
	(void)what;
	if (jump < 0)
		jump = -jump;
	t->last_mono_ms = mono;
	t->last_wall_ms = wall;
	if (late > conf->tilt_stall_ms)
		tilt_enter(t, TILT_STALL, late);
	else if (jump > conf->tilt_jump_ms)
		tilt_enter(t, TILT_CLOCK, jump);
}

struct coord_tilt *
coord_tilt_new(struct coord *c)
{
	struct coord_tilt *t;
	struct timeval tv = { 0, TILT_TICK_MS * 1000 };

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->c = c;
	t->last_mono_ms = tilt_ms(CLOCK_MONOTONIC);
	t->last_wall_ms = tilt_ms(CLOCK_REALTIME);
	if ((t->tick = event_new(c->base, -1, EV_PERSIST, tilt_tick_cb,
	    t)) == NULL || (t->end = evtimer_new(c->base, tilt_end_cb,
	    t)) == NULL || event_add(t->tick, &tv) < 0) {
		coord_tilt_free(t);
		return NULL;
	}
	return t;
}

void
coord_tilt_free(struct coord_tilt *t)
{
	if (t == NULL)
		return;
	if (t->tick != NULL)
		event_free(t->tick);
	if (t->end != NULL)
		event_free(t->end);
	free(t);
}

uint64_t
coord_tilt_until(const struct coord_tilt *t)
{
	return t->until_ns;
}

void
coord_tilt_write_metrics(const struct coord_tilt *t, struct evbuffer *out)
{
	static const char *const causes[TILT_CAUSES] = { "stall",
	    "clock_jump" };

	metrics_family(out, "troika_coord_tilt", "gauge",
	    "1 while opinions are withheld after a stalled loop or a clock "
	    "jump.");
	metrics_sample(out, "troika_coord_tilt", NULL, 0, NULL,
	    t->until_ns != 0);
	metrics_family(out, "troika_coord_tilts_total", "counter",
	    "Times opinions were withheld, by cause.");
	for (int i = 0; i < TILT_CAUSES; i++) {
		struct troika_label l = { "cause", causes[i] };

		metrics_sample(out, "troika_coord_tilts_total", &l, 1, NULL,
		    (double)t->count[i]);
	}
}
