/*
 * One libcurl multi handle driven by the event loop
 * (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION on libevent), shared by
 * every async HTTP plugin so transfers never block the loop.
 */
#ifndef TROIKA_CURLM_H
#define TROIKA_CURLM_H

struct event_base;
struct curlm;

/* code is a CURLcode. After done the caller owns the easy handle again. */
typedef void (*curlm_done_fn)(void *easy, int code, void *arg);

struct curlm *curlm_new(struct event_base *base);

/* Add a prepared easy handle. Returns 0 or a negative errno. */
int curlm_add(struct curlm *cm, void *easy, curlm_done_fn done, void *arg);

/* Remove a transfer before it completes; done is not called. */
void curlm_remove(struct curlm *cm, void *easy);

/* Transfers in progress. */
int curlm_running(const struct curlm *cm);

/* Removes (without callbacks) any transfer left, then frees. Accepts NULL. */
void curlm_free(struct curlm *cm);

#endif
