/*
 * handshake_broken.pml -- handshake.pml with the ReL4-style lost wake-up (see docs/model.md).
 *
 * The consumer finds the ring empty, then arms data_waiter and suspends without re-checking
 * the ring. A producer that published between the emptiness check and the arming read
 * data_waiter == 0 and signalled nobody; if that was its last message the consumer sleeps
 * forever with a message in the ring. check.sh requires every check of this model to FAIL.
 */
#define BROKEN_NO_RECHECK
#include "handshake.pml"
