/*
 * handshake_idle_broken.pml -- handshake.pml with the same lost wake-up one level down, in the
 * runtime's idle path (see docs/model.md).
 *
 * The runtime looks at `pending`, and only then stores state = sleeping and calls futex_wait,
 * without re-checking `pending`. A signal that lands between the two sees state == running and
 * does not wake the thread. check.sh requires every check of this model to FAIL.
 */
#define BROKEN_IDLE_NO_RECHECK
#include "handshake.pml"
