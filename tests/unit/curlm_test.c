/*
 * curlm against servers inside the test: libevent's evhttp on the same
 * event base, and a "silent" socket that listens but never answers. Each
 * test ends with nothing pending on a fresh base and everything freed.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "curlm.h"

#define NFETCH 50

struct ctx;

struct fetch {
	struct ctx *ctx;
	CURL *easy;
	int calls;
	int code;
	long http_status;
	char body[256];
	size_t len;
	/* Set: done adds this one, or removes that one. */
	struct fetch *add_next;
	struct fetch *remove_other;
};

struct ctx {
	struct event_base *base;
	struct curlm *cm;
	struct evhttp *http;
	int http_port;
	int silent_fd;
	int silent_port;
	struct event *watchdog;
	int watchdog_fired;
	int want; /* break the loop after this many done calls */
	int got;
};

/* Seen by CURLOPT_PRIVATE: curlm must leave it to the plugin. */
static int private_marker;

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();

	(void)arg;
	assert_non_null(out);
	evbuffer_add_printf(out, "%s", evhttp_request_get_uri(req));
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static int
local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* A TCP socket on 127.0.0.1, an ephemeral port, listening if asked. */
static int
local_socket(int do_listen, int *ret_port)
{
	struct sockaddr_in sin;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 64), 0);
	*ret_port = local_port(fd);
	return fd;
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctx *c = arg;

	(void)fd;
	(void)what;
	c->watchdog_fired = 1;
	event_base_loopbreak(c->base);
}

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct evhttp_bound_socket *bound;
	struct timeval tv = { 10, 0 };

	assert_non_null(c);
	assert_non_null(c->base = event_base_new());
	assert_non_null(c->http = evhttp_new(c->base));
	evhttp_set_gencb(c->http, http_request_cb, c);
	bound = evhttp_bind_socket_with_handle(c->http, "127.0.0.1", 0);
	assert_non_null(bound);
	c->http_port = local_port(evhttp_bound_socket_get_fd(bound));
	c->silent_fd = local_socket(1, &c->silent_port);
	assert_non_null(c->cm = curlm_new(c->base));
	assert_non_null(c->watchdog = evtimer_new(c->base, watchdog_cb, c));
	evtimer_add(c->watchdog, &tv);
	*state = c;
	return 0;
}

/* Free in order and check nothing was left pending on the base. */
static int
teardown(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(c->watchdog_fired, 0);
	curlm_free(c->cm);
	evhttp_free(c->http);
	event_free(c->watchdog);
	close(c->silent_fd);
	/* evhttp frees its connections' bufferevents from the loop. */
	event_base_loop(c->base, EVLOOP_NONBLOCK);
	assert_int_equal(event_base_get_num_events(c->base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	event_base_free(c->base);
	free(c);
	return 0;
}

static size_t
fetch_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb;

	if (n > sizeof(f->body) - 1 - f->len)
		return 0; /* fails the transfer: more than any test sends */
	memcpy(f->body + f->len, ptr, n);
	f->len += n;
	f->body[f->len] = '\0';
	return n;
}

static void
fetch_prepare(struct fetch *f, struct ctx *c, int port, const char *path,
    long timeout_ms)
{
	char url[128];

	memset(f, 0, sizeof(*f));
	f->ctx = c;
	f->code = -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	assert_non_null(f->easy = curl_easy_init());
	curl_easy_setopt(f->easy, CURLOPT_URL, url);
	curl_easy_setopt(f->easy, CURLOPT_PROXY, ""); /* ignore *_proxy env */
	curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, fetch_write_cb);
	curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->easy, CURLOPT_PRIVATE, &private_marker);
	curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
}

static void
fetch_done_cb(void *easy, int code, void *arg)
{
	struct fetch *f = arg;
	struct ctx *c = f->ctx;
	void *priv = NULL;

	assert_ptr_equal(easy, f->easy);
	f->calls++;
	f->code = code;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &f->http_status);
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	assert_ptr_equal(priv, &private_marker);
	/* The handle is ours again: freeing it here must be fine. */
	curl_easy_cleanup(f->easy);
	f->easy = NULL;

	if (f->add_next != NULL)
		assert_int_equal(curlm_add(c->cm, f->add_next->easy,
		    fetch_done_cb, f->add_next), 0);
	if (f->remove_other != NULL && f->remove_other->easy != NULL) {
		curlm_remove(c->cm, f->remove_other->easy);
		c->got++; /* counts as finished for the loop */
	}
	if (++c->got >= c->want)
		event_base_loopbreak(c->base);
}

static void
fetch_cleanup(struct fetch *f)
{
	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	f->easy = NULL;
}

static void
test_fetch_many(void **state)
{
	struct ctx *c = *state;
	struct fetch *f = calloc(NFETCH, sizeof(*f));
	char path[32];

	assert_non_null(f);
	for (int i = 0; i < NFETCH; i++) {
		snprintf(path, sizeof(path), "/n/%d", i);
		fetch_prepare(&f[i], c, c->http_port, path, 5000);
		assert_int_equal(curlm_add(c->cm, f[i].easy, fetch_done_cb,
		    &f[i]), 0);
	}
	assert_int_equal(curlm_running(c->cm), NFETCH);
	c->want = NFETCH;
	event_base_dispatch(c->base);
	assert_int_equal(c->got, NFETCH);
	assert_int_equal(curlm_running(c->cm), 0);
	for (int i = 0; i < NFETCH; i++) {
		snprintf(path, sizeof(path), "/n/%d", i);
		assert_int_equal(f[i].calls, 1);
		assert_int_equal(f[i].code, CURLE_OK);
		assert_int_equal(f[i].http_status, 200);
		assert_string_equal(f[i].body, path);
	}
	free(f);
}

static void
test_refused(void **state)
{
	struct ctx *c = *state;
	struct fetch f;
	int port, fd;

	/* A port that was just ours and is closed now, not listening. */
	fd = local_socket(0, &port);
	close(fd);
	fetch_prepare(&f, c, port, "/", 5000);
	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), 0);
	c->want = 1;
	event_base_dispatch(c->base);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.code, CURLE_COULDNT_CONNECT);
	assert_int_equal(curlm_running(c->cm), 0);
}

static void
test_timeout(void **state)
{
	struct ctx *c = *state;
	struct fetch f;
	int64_t t0 = now_us();

	fetch_prepare(&f, c, c->silent_port, "/", 200);
	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), 0);
	c->want = 1;
	event_base_dispatch(c->base);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.code, CURLE_OPERATION_TIMEDOUT);
	assert_true(now_us() - t0 >= 190000);
	assert_true(now_us() - t0 < 2000000);
}

static void
break_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop for ms milliseconds. */
static void
run_for(struct ctx *c, int ms)
{
	struct timeval tv = { 0, ms * 1000 };
	struct event *ev = evtimer_new(c->base, break_cb, c->base);

	assert_non_null(ev);
	evtimer_add(ev, &tv);
	event_base_dispatch(c->base);
	event_free(ev);
}

static void
test_remove_in_flight(void **state)
{
	struct ctx *c = *state;
	struct fetch f, g;

	fetch_prepare(&f, c, c->silent_port, "/", 300);
	fetch_prepare(&g, c, c->silent_port, "/", 300);
	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), 0);
	assert_int_equal(curlm_add(c->cm, g.easy, fetch_done_cb, &g), 0);
	run_for(c, 100); /* connected and waiting */
	curlm_remove(c->cm, f.easy);
	assert_int_equal(curlm_running(c->cm), 1);
	curlm_remove(c->cm, f.easy); /* again: ignored */
	/* Past f's own timeout: nothing may arrive for it. */
	c->want = 1;
	event_base_dispatch(c->base);
	assert_int_equal(f.calls, 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.code, CURLE_OPERATION_TIMEDOUT);
	run_for(c, 300);
	assert_int_equal(f.calls, 0);
	assert_int_equal(curlm_running(c->cm), 0);
	fetch_cleanup(&f);
}

static void
test_reentrant_add(void **state)
{
	struct ctx *c = *state;
	struct fetch first, second, third;

	fetch_prepare(&first, c, c->http_port, "/first", 5000);
	fetch_prepare(&second, c, c->http_port, "/second", 5000);
	fetch_prepare(&third, c, c->http_port, "/third", 5000);
	first.add_next = &second;
	second.add_next = &third;
	assert_int_equal(curlm_add(c->cm, first.easy, fetch_done_cb, &first),
	    0);
	c->want = 3;
	event_base_dispatch(c->base);
	assert_int_equal(first.calls, 1);
	assert_int_equal(second.calls, 1);
	assert_int_equal(third.calls, 1);
	assert_int_equal(third.code, CURLE_OK);
	assert_string_equal(second.body, "/second");
	assert_string_equal(third.body, "/third");
	assert_int_equal(curlm_running(c->cm), 0);
}

static void
test_reentrant_remove(void **state)
{
	struct ctx *c = *state;
	struct fetch fast, slow, r1, r2;
	int port, fd;

	/* A done removes a transfer still in flight. */
	fetch_prepare(&fast, c, c->http_port, "/fast", 5000);
	fetch_prepare(&slow, c, c->silent_port, "/", 5000);
	fast.remove_other = &slow;
	assert_int_equal(curlm_add(c->cm, slow.easy, fetch_done_cb, &slow), 0);
	assert_int_equal(curlm_add(c->cm, fast.easy, fetch_done_cb, &fast), 0);
	c->want = 2;
	event_base_dispatch(c->base);
	assert_int_equal(fast.calls, 1);
	assert_int_equal(slow.calls, 0);
	assert_int_equal(curlm_running(c->cm), 0);
	fetch_cleanup(&slow);

	/*
	 * Two that fail at once, each removing the other: whichever
	 * finishes first, the other is never reported, even if its
	 * completion was already queued in the same batch.
	 */
	fd = local_socket(0, &port);
	close(fd);
	fetch_prepare(&r1, c, port, "/", 5000);
	fetch_prepare(&r2, c, port, "/", 5000);
	r1.remove_other = &r2;
	r2.remove_other = &r1;
	c->got = 0;
	c->want = 2;
	assert_int_equal(curlm_add(c->cm, r1.easy, fetch_done_cb, &r1), 0);
	assert_int_equal(curlm_add(c->cm, r2.easy, fetch_done_cb, &r2), 0);
	event_base_dispatch(c->base);
	run_for(c, 50);
	assert_int_equal(r1.calls + r2.calls, 1);
	assert_int_equal(curlm_running(c->cm), 0);
	fetch_cleanup(&r1);
	fetch_cleanup(&r2);
}

static void
test_free_with_transfers(void **state)
{
	struct ctx *c = *state;
	struct fetch f[3];

	for (int i = 0; i < 3; i++) {
		fetch_prepare(&f[i], c, c->silent_port, "/", 5000);
		assert_int_equal(curlm_add(c->cm, f[i].easy, fetch_done_cb,
		    &f[i]), 0);
	}
	run_for(c, 100);
	assert_int_equal(curlm_running(c->cm), 3);
	curlm_free(c->cm);
	c->cm = NULL; /* teardown frees NULL */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f[i].calls, 0);
		fetch_cleanup(&f[i]);
	}
}

static void
test_errors(void **state)
{
	struct ctx *c = *state;
	struct fetch f;

	errno = 0;
	assert_null(curlm_new(NULL));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(curlm_running(NULL), 0);
	curlm_free(NULL);
	curlm_remove(NULL, NULL);

	fetch_prepare(&f, c, c->http_port, "/once", 5000);
	assert_int_equal(curlm_add(NULL, f.easy, fetch_done_cb, &f), -EINVAL);
	assert_int_equal(curlm_add(c->cm, NULL, fetch_done_cb, &f), -EINVAL);
	assert_int_equal(curlm_add(c->cm, f.easy, NULL, &f), -EINVAL);
	assert_int_equal(curlm_running(c->cm), 0);
	curlm_remove(c->cm, f.easy); /* never added: ignored */

	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), 0);
	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), -EEXIST);
	assert_int_equal(curlm_running(c->cm), 1);
	c->want = 1;
	event_base_dispatch(c->base);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.code, CURLE_OK);
	assert_string_equal(f.body, "/once");
}

static void
test_two_multis(void **state)
{
	struct ctx *c = *state;
	struct curlm *other = curlm_new(c->base);
	struct fetch f;

	assert_non_null(other);
	fetch_prepare(&f, c, c->http_port, "/x", 5000);
	assert_int_equal(curlm_add(c->cm, f.easy, fetch_done_cb, &f), 0);
	/* libcurl refuses a handle that sits in another multi. */
	assert_int_equal(curlm_add(other, f.easy, fetch_done_cb, &f), -EEXIST);
	assert_int_equal(curlm_running(other), 0);
	curlm_free(other);
	c->want = 1;
	event_base_dispatch(c->base);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.code, CURLE_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fetch_many, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reentrant_add, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reentrant_remove, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_with_transfers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_multis, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
