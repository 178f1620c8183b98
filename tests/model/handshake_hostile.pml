/*
 * handshake_hostile.pml -- handshake.pml where the neighbouring channel's peer is hostile: it
 * may clear the consumer runtime's hint word or forge this channel's hint bit, as any client
 * can (it maps the hints writable; it cannot write this channel's raise flag or the control
 * line). check.sh requires every check of this model to pass: no lost wake-up, no deadlock.
 */
#define HOSTILE
#include "handshake.pml"
