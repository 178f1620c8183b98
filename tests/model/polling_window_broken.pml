/*
 * polling_window_broken.pml -- polling_window.pml with the runtime before the polling window
 * (see docs/model.md): a slot handler clears the poller's arming, and the poller is armed again
 * only when the runtime turns idle, which a busy runtime never does. The producer's next
 * message then raises nothing and is never consumed. check.sh requires every check of this
 * model to FAIL.
 */
#define BROKEN_ARM_AT_IDLE
#include "polling_window.pml"
