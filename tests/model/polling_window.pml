/*
 * polling_window.pml -- a ring beyond the runtime's polling window is never stranded while the
 * runtime stays busy (runtime/runtime.hpp: RuntimeOptions::max_polled, Runtime::flag_taken;
 * see docs/model.md).
 *
 * One runtime, one ring past its polling window (a "cold" ring: never polled while the runtime
 * is busy), and other work that keeps the runtime busy for ever: the runtime never turns idle,
 * so nothing the idle path does (arming every poller before a sleep) can help. A producer
 * publishes M messages on the cold ring; after each it runs must_signal: if the ring's waiter
 * flag is armed it takes it (exchange) and raises the runtime's pending bit for the ring's slot.
 * The runtime, at every step: takes the pending bit and runs the slot handler (which reports
 * the flag taken -- Runtime::flag_taken queues the poller for re-arming -- and drains the
 * ring); then re-arms each queued poller (arm: flag = 1, then re-check the ring; work there:
 * disarm, poll it, queue it again); then polls its window (the busy work, not modelled).
 * At the start the ring's poller is parked past the window and armed at once (Runtime::cool).
 * Promela interleaving is sequentially consistent, standing in for the seq_cst fences of the
 * handshake (ring/handshake.hpp); weak memory orders are handshake.pml's subject.
 *
 * Compile-time switches (spin -D...):
 *   M=k                 messages the producer publishes (default 3)
 *   BROKEN_ARM_AT_IDLE  the runtime before the window: a handler clears the flag and the
 *                       poller is armed again only when the runtime turns idle (never, here)
 *   NO_MONITOR          leave out the stranded-message monitor
 *
 * Properties: assertions (the monitor: a message is never left in the ring with the flag
 * disarmed, no raise pending, the poller not queued for re-arming and the runtime not in the
 * middle of arming it -- a state from which only polling could find it, and the ring is not
 * polled); ltl `live`: <> every message consumed (pan -a -f, weak fairness).
 */

#ifndef M
#define M 3
#endif

byte ring;        /* messages published on the cold ring and not yet consumed */
byte published;   /* producer's count */
byte consumed;    /* runtime's count */
bit  waiter;      /* the ring's data_waiter flag (the handshake's arming) */
bit  pending;     /* the runtime's notification bit for the ring's slot */
bit  armed;       /* Poller::armed */
bit  queued;      /* Poller::retry_queued: on the runtime's re-arm list */
bit  arming = 1;  /* model only: the runtime is parking the poller, or between taking it off
                     its re-arm list and the end of its arm + re-check */

active proctype Producer()
{
  do
  :: published < M ->
     atomic { ring++; published++ }  /* publish (release) */
     /* must_signal: full fence, then take the flag if it is armed (exchange) */
     atomic {
       if
       :: waiter == 1 -> waiter = 0; pending = 1  /* and send: the runtime's bit */
       :: else -> skip
       fi
     }
  :: else -> break
  od
}

/* The slot handler's drain, and a poll: take every message in the ring. */
inline drain()
{
  atomic { consumed = consumed + ring; ring = 0 }
}

active proctype Runtime()
{
  /* park: the poller lands past the window; cool() arms it (re-checking the ring). */
  waiter = 1;
  if
  :: atomic { ring > 0 -> waiter = 0; queued = 1; arming = 0 }  /* work there: queue it */
  :: atomic { ring == 0 -> armed = 1; arming = 0 }
  fi;
  do
  :: /* dispatch: the pending bit, then the slot handler */
     atomic {
       if
       :: pending == 1 ->
          pending = 0;
          armed = 0;       /* the producer took the flag */
#ifndef BROKEN_ARM_AT_IDLE
          queued = 1;      /* Runtime::flag_taken: re-arm at the next step */
#endif
          drain()
       :: else -> skip
       fi
     };
     /* rearm_cold: each queued poller, once per step */
     if
     :: atomic { queued == 1 -> queued = 0; arming = 1 };
        if
        :: armed == 0 ->
           waiter = 1;     /* arm: flag = 1, full fence ... */
           if              /* ... then re-check the ring */
           :: atomic { ring > 0 -> waiter = 0; drain(); queued = 1; arming = 0 }  /* poll; again next step */
           :: atomic { ring == 0 -> armed = 1; arming = 0 }
           fi
        :: else -> arming = 0
        fi
     :: else -> skip
     fi;
     /* poll the window: the other work, always there, keeps the runtime from turning idle */
     if
     :: consumed == M -> break
     :: else -> skip
     fi
  od
}

#ifndef NO_MONITOR
/* A message stranded: only polling could find it, and a ring past the window is not polled. */
active proctype Monitor()
{
end_watch:
  atomic {
    (ring > 0 && waiter == 0 && pending == 0 && queued == 0 && arming == 0) -> assert(false)
  }
}
#endif

ltl live { <> (consumed == M) }
