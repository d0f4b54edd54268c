/*
 * coord_tilt: TILT (issue 5). A coordinator whose loop stalled (a timer
 * came much later than asked) or whose wall clock jumped (wall and
 * monotonic time moved apart) cannot trust the silences and timings its
 * opinions rest on: it withholds its opinions for a grace period, says so
 * in an event, its status and metrics, and forms them afresh after.
 */
#ifndef TROIKA_COORD_TILT_H
#define TROIKA_COORD_TILT_H

#include <stdint.h>

struct evbuffer;
struct coord;
struct coord_tilt;

struct coord_tilt *coord_tilt_new(struct coord *c);
void coord_tilt_free(struct coord_tilt *t);
/* Wall-clock ns until which opinions are withheld; 0 when not. */
uint64_t coord_tilt_until(const struct coord_tilt *t);
/* troika_coord_tilt (1/0), troika_coord_tilts_total{cause}. */
void coord_tilt_write_metrics(const struct coord_tilt *t,
    struct evbuffer *out);

#endif
