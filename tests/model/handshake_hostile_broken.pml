/*
 * handshake_hostile_broken.pml -- handshake_hostile.pml with a runtime that re-checks only the
 * hint word before it sleeps, not the raise flags (no Notification::rescan). A raise whose hint
 * the hostile peer cleared is then lost. check.sh requires every check of this model to FAIL.
 */
#define HOSTILE
#define BROKEN_NO_FLAG_RESCAN
#include "handshake.pml"
