/*
 * troikactl: the operator's client of the coordinators' Admin service.
 * Parses the command line (ctl_args.c) and runs one command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct ctl_opts o;
	const char *no_color = getenv("NO_COLOR");
	int rc;

	/* core/lib logs only what goes wrong (a TLS file that won't load). */
	log_init("troikactl", LOG_TARGET_STDERR, LOG_WARNING);
	rc = ctl_args_parse(
	    &o, argc, argv, getenv("TROIKA_COORDINATOR"), stderr);
	if (rc != 0)
		goto out;
	if (o.help) {
		ctl_usage(stdout);
		goto out;
	}
	if (o.version) {
		printf("troikactl %s\n", TROIKA_VERSION);
		goto out;
	}
	/* no-color.org: any non-empty NO_COLOR turns colour off. */
	o.color =
	    isatty(STDOUT_FILENO) && (no_color == NULL || no_color[0] == '\0');
	switch (o.command) {
	case CTL_CMD_STATUS:
		rc = ctl_status_run(&o);
		break;
	case CTL_CMD_EVENTS:
		rc = ctl_events_run(&o);
		break;
	case CTL_CMD_ACTIONS:
		rc = ctl_actions_run(&o);
		break;
	case CTL_CMD_MAINTENANCE:
		rc = ctl_maint_run(&o);
		break;
	case CTL_CMD_SWITCHOVER:
		rc = ctl_switch_run(&o);
		break;
	case CTL_CMD_NONE:
		rc = CTL_EXIT_USAGE;
		break;
	}
out:
	ctl_opts_free(&o);
	if (fflush(stdout) != 0 && rc == 0)
		rc = CTL_EXIT_FAIL;
	return rc;
}
