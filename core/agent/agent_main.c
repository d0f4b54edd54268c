#include "log.h"

int
main(void)
{
	log_init("troika-agent", LOG_TARGET_STDERR, 6);
	log_info("not yet");
	return 0;
}
