/*
 * handshake_drop_broken.pml -- handshake.pml where the consumer's runtime may run a scheduling
 * point after the consumer's re-check but before the consumer is registered as the waiter of
 * its vector, and discards the pending bit it finds because nobody waits for it yet (see
 * docs/model.md). The producer's signal that raced with the re-check is lost.
 * check.sh requires every check of this model to FAIL.
 */
#define BROKEN_DROP_UNREGISTERED
#include "handshake.pml"
