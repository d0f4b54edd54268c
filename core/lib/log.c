#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "troika";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;

static const char *const log_level_names[] = {
	[LOG_ERR] = "err",
	[LOG_WARNING] = "warning",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

void
log_init(const char *progname, enum log_target target, int level)
{
	log_progname = progname;
	log_target = target;
	log_level = level;
	if (target == LOG_TARGET_SYSLOG)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return log_level;
}

int
log_level_from_str(const char *s)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++)
		if (log_level_names[i] != NULL && strcmp(s, log_level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_str(int level)
{
	if (level < 0 || (size_t)level >= sizeof(log_level_names) / sizeof(log_level_names[0]) ||
	    log_level_names[level] == NULL)
		return "unknown";
	return log_level_names[level];
}

static void
log_str(int level, const char *line)
{
	if (level > log_level)
		return;
	if (log_target == LOG_TARGET_SYSLOG) {
		syslog(level, "%s", line);
		return;
	}

	/* One write(2) per line, so lines from threads never interleave. */
	char out[4200];
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(out, sizeof(out), "%s.%03ldZ %s[%d] %s: %s\n", stamp,
	    ts.tv_nsec / 1000000, log_progname, (int)getpid(),
	    log_level_str(level), line);
	if (n > 0) {
		size_t len = (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1;
		if ((size_t)n >= sizeof(out))
			out[len - 1] = '\n';
		ssize_t w = write(STDERR_FILENO, out, len);
		(void)w;
	}
}

void
log_vlog(int level, const char *fmt, va_list ap)
{
	char line[4096];

	if (level > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_str(level, line);
}

static void
log_vlog_errno(int level, int saved_errno, const char *fmt, va_list ap)
{
	char msg[3800];
	char line[4096];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(line, sizeof(line), "%s: %s", msg, strerror(saved_errno));
	log_str(level, line);
}

void
log_warn(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog_errno(LOG_WARNING, saved_errno, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(level, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog_errno(LOG_ERR, saved_errno, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
