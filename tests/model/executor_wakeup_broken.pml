/*
 * executor_wakeup_broken.pml -- executor_wakeup.pml where the kernel core sets need_wakeup and
 * sleeps without re-checking the submission ring (see docs/model.md). A submitter that
 * published just before need_wakeup was set saw 0 and woke nobody. check.sh requires every
 * check of this model to FAIL.
 */
#define BROKEN_NO_RECHECK
#include "executor_wakeup.pml"
