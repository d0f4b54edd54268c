/*
 * fcgi: a minimal FastCGI client for one request, GET <status_path>?json,
 * straight to a PHP-FPM pool (TCP ip:port or a unix socket) on the loop:
 * non-blocking connect, write, read, bounded reply, one deadline. It
 * speaks just enough of the protocol (FastCGI 1.0: BEGIN_REQUEST, PARAMS,
 * STDIN out; STDOUT, STDERR, END_REQUEST in) for a status page.
 *
 * Like webfetch, a request ends in exactly one done callback from the
 * loop (never from inside fcgi_get()), unless fcgi_abort() or fcgi_free()
 * comes first.
 */
#ifndef TROIKA_FCGI_H
#define TROIKA_FCGI_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h>

struct fcgi;

typedef void (*fcgi_done_cb)(struct fcgi *fc, void *arg);

/*
 * address: numeric "ip:port" or "[ipv6]:port" (names are refused: a
 * resolver would block the loop), or an absolute socket path. path: the
 * pool's pm.status_path. Returns 0, or -EINVAL after logging why, or
 * -ENOMEM.
 */
int fcgi_new(const struct troika_host *host, struct troika_instance *inst,
    const char *address, const char *path, size_t max_body,
    struct fcgi **ret);
/* Aborts a running request. Accepts NULL. */
void fcgi_free(struct fcgi *fc);

void fcgi_get(struct fcgi *fc, int64_t timeout_ms, fcgi_done_cb done,
    void *arg);
/* Forget a running request; done is not called. Accepts NULL. */
void fcgi_abort(struct fcgi *fc);

/*
 * After done: OK when a complete reply came (whatever its Status), or
 * CRITICAL/UNKNOWN with evidence and reason, as webfetch_outcome().
 */
enum troika_status fcgi_outcome(const struct fcgi *fc,
    enum troika_evidence *ret_evidence, char *msg, size_t msglen);
/* After a reply: its Status header (200 without one) and its body. */
long fcgi_status(const struct fcgi *fc);
const char *fcgi_body(const struct fcgi *fc, size_t *ret_len);

#endif
