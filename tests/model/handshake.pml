/*
 * handshake.pml -- uipc wake handshake, levels 1 and 2 (see docs/model.md).
 *
 * Level 1: one SPSC ring between a producer coroutine and a consumer coroutine
 *          (abi::RingProducerLine::tail/space_waiter, abi::RingConsumerLine::head/data_waiter).
 *          Code: uipc::handshake::arm/disarm/must_signal (include/uipc/ring/handshake.hpp),
 *          RingProducer/RingConsumer (src/ring/ring.cpp).
 * Level 2: each side's runtime notification: the per-slot raise flag (in the channel region),
 *          the hint word every sender may write (abi::NotificationHints::pending), `state`
 *          (abi::NotificationWord, read-only to peers) and the futex word `wake` that a
 *          sender changes before it wakes (abi::NotificationHints::wake). Code:
 *          SenderEntry::send, Notification::wait/take/rescan (src/notify/notification.cpp),
 *          Runtime::dispatch_interrupts/idle.
 *
 * Each side is one single-threaded runtime running one coroutine, so one Promela process per
 * side: the coroutine's code and, when it suspends, the runtime's scheduling/idle loop.
 * Every statement on a shared variable is one atomic step, and Promela interleaving is
 * sequentially consistent, which is what the seq_cst operations and fences of the C++ code
 * provide for these accesses. Weak memory orders are not modelled.
 *
 * Compile-time switches (spin -D...):
 *   N=k                     messages the producer sends (default 4)
 *   CAP=k                   ring capacity (default 2)
 *   NEIGHBOUR_SIGNALS=k     signals another channel's peer raises on the consumer's runtime,
 *                           on a different pending bit (default 2; 0 leaves it out)
 *   HOSTILE                 the neighbour is hostile as well: between its signals it may clear
 *                           the consumer's hint word or forge this channel's hint bit (it can
 *                           write the hints, not this channel's raise flag)
 *   BROKEN_NO_FLAG_RESCAN   the runtime re-checks only the hints, not the raise flags, before
 *                           it sleeps (fails under HOSTILE: a cleared hint loses the raise)
 *   SPURIOUS                futex_wait may return at any time (spurious wake-up)
 *   BROKEN_NO_RECHECK       ReL4-style bug, level 1: the consumer arms data_waiter after its
 *                           emptiness check and never re-checks the ring before suspending
 *   BROKEN_IDLE_NO_RECHECK  the same bug at level 2: the runtime checks `pending` before it
 *                           stores state = sleeping and never re-checks afterwards
 *   BROKEN_DROP_UNREGISTERED  the runtime drains `pending` at a scheduling point that falls
 *                           between the consumer's re-check and its suspension, and discards
 *                           the bit because no coroutine is registered for it yet
 *   NO_MONITOR              leave out the lost-wake-up monitor (to see that the invalid-end-state
 *                           and liveness checks catch the broken variants on their own)
 *
 * Properties:
 *   - assertions: in-order, exactly-once delivery; a producer never overwrites an unconsumed
 *     slot; the lost-wake-up monitor (below);
 *   - invalid end states: the only end labels are the runtimes' idle points after their
 *     coroutine has finished (and the monitor's wait), so any other blocked state is a
 *     deadlock / lost wake-up;
 *   - ltl `live`: <> all N messages consumed (check with pan -a -f, weak fairness).
 */

#ifndef N
#define N 4
#endif
#ifndef CAP
#define CAP 2
#endif
#ifndef NEIGHBOUR_SIGNALS
#define NEIGHBOUR_SIGNALS 2
#endif

#define PROD 0     /* index of the producer's runtime (its NotificationWord) */
#define CONS 1     /* index of the consumer's runtime */
#define VEC  1     /* the pending bit this channel's slot owns on either notification */
#define OTHER 2    /* a bit owned by another channel of the consumer's runtime */
#define FREE 0     /* an empty ring slot; message k carries value k + 1 */

/* level 1: shared ring */
byte tail;                 /* RingProducerLine::tail, written by the producer only */
byte head;                 /* RingConsumerLine::head, written by the consumer only */
bit  space_waiter;         /* RingProducerLine::space_waiter, armed by the producer */
bit  data_waiter;          /* RingConsumerLine::data_waiter, armed by the consumer */
byte ring[CAP];            /* entries; FREE once consumed */

/* level 2: one notification per runtime */
byte pending[2];           /* NotificationHints::pending (doorbells folded in: one bit per slot) */
bit  flag[2];              /* this channel's raise flag for each side's slot (ChannelHeader::
                            * raise_server / raise_client): set by the peer, cleared by take */
bit  nbflag;               /* the neighbour channel's raise flag on the consumer's runtime */
bit  state[2];             /* NotificationWord::state: 0 running, 1 sleeping */
bit  woken[2];             /* NotificationHints::wake, the futex word, abstracted: 1 when a sender
                            * changed it since the receiver read it before sleeping (the real
                            * word is a 32-bit counter: no ABA within one sleep) */

/* model-only bookkeeping */
bit  asleep[2];            /* the runtime's thread is blocked in futex_wait(&state, 1) */
bit  prod_done, cons_done; /* the coroutine has finished; its runtime is idle for good */
#if NEIGHBOUR_SIGNALS > 0
bit  nb_done;              /* the neighbour (below) has sent all its signals */
#else
bit  nb_done = 1;
#endif

/* ---- futex -------------------------------------------------------------------------------- */

/* futex_wait(&wake, value read before the re-check): the kernel compares and enqueues
 * atomically; returns at once if the word changed. With SPURIOUS it may also return without a
 * wake. */
inline futex_wait(r)
{
  atomic {
    if
    :: woken[r] == 0 -> asleep[r] = 1
    :: else -> skip
    fi
  };
  if
  :: asleep[r] == 0
#ifdef SPURIOUS
  :: asleep[r] = 0
#endif
  fi
}

inline futex_wake(r)
{
  woken[r] = 1;                                /* wake.fetch_add(1): a receiver not yet blocked returns */
  asleep[r] = 0                                /* FUTEX_WAKE */
}

/* ---- level 2: signal(v) ------------------------------------------------------------------- */

/* A peer's signal: its mapping of `state` is read-only, so it wakes whenever it sees the
 * receiver asleep (no exchange; a redundant FUTEX_WAKE is harmless). */
inline signal(r, b)
{
  if
  :: b == VEC -> flag[r] = 1                   /* store(1, release): the raise itself */
  :: else -> nbflag = 1
  fi;
  pending[r] = pending[r] | b;                 /* fetch_or(bit, seq_cst) */
  /* full fence */
  if
  :: state[r] == 1 -> futex_wake(r)
  :: else -> skip
  fi
}

/* take(): the hint bits say where to look; a slot counts only if its flag was set. */
inline take(r)
{
  d_step {
    p = pending[r]; pending[r] = 0;            /* exchange(pending, 0) */
    if
    :: (p & VEC) != 0 && flag[r] == 1 -> flag[r] = 0
    :: else -> p = p & ~VEC                    /* a hint without a raise: ignored */
    fi;
    if
    :: r == CONS && (p & OTHER) != 0 && nbflag == 1 -> nbflag = 0
    :: else -> p = p & ~OTHER
    fi
  }
}

/* wait()'s re-check after announcing sleep: the hints, and (rescan) every watched flag, whose
 * hints are given back so that the next take finds it. */
#ifdef BROKEN_NO_FLAG_RESCAN
#define raised(r) (pending[r] != 0)
inline rescan(r) { skip }
#else
#define raised(r) (pending[r] != 0 || flag[r] == 1 || (r == CONS && nbflag == 1))
inline rescan(r)
{
  d_step {
    if
    :: flag[r] == 1 -> pending[r] = pending[r] | VEC
    :: else -> skip
    fi;
    if
    :: r == CONS && nbflag == 1 -> pending[r] = pending[r] | OTHER
    :: else -> skip
    fi
  }
}
#endif

/* ---- level 2: the runtime, entered when the coroutine has suspended ------------------------ */

/* Scheduling point, then idle, until the coroutine's bit is seen in `pending`; on return the
 * coroutine is running again and re-tries its operation. */
inline runtime_until_ready(r)
{
  do
  :: take(r);
     if
     :: (p & VEC) != 0 -> break                  /* make the waiting coroutine ready */
     :: (p & VEC) == 0 && p != 0 -> skip         /* other coroutines ran; schedule again */
     :: p == 0 ->
#ifdef BROKEN_IDLE_NO_RECHECK
        if
        :: pending[r] != 0 -> skip               /* checked before announcing sleep */
        :: else ->
           state[r] = 1;
           woken[r] = 0;
           futex_wait(r);
           state[r] = 0
        fi
#else
        state[r] = 1;                            /* store(sleeping, seq_cst) */
        woken[r] = 0;                            /* reads the futex value to sleep on */
        /* full fence */
        if
        :: raised(r) -> rescan(r); state[r] = 0  /* work arrived: run */
        :: else ->
           futex_wait(r);
           state[r] = 0
        fi
#endif
     fi
  od
}

/* The same loop once the coroutine has finished: a late signal (a stale wake-up) finds no
 * waiting coroutine and the runtime goes back to sleep. This is the only legitimate place to
 * stop, hence the end label. */
inline runtime_idle_forever(r)
{
  do
  :: take(r);
     state[r] = 1;
     woken[r] = 0;
     if
     :: raised(r) -> rescan(r); state[r] = 0
     :: else ->
        atomic {
          if
          :: woken[r] == 0 -> asleep[r] = 1
          :: else -> skip
          fi
        };
end_idle:
        if
        :: asleep[r] == 0
#ifdef SPURIOUS
        :: asleep[r] = 0
#endif
        fi;
        state[r] = 0
     fi
  od
}

/* ---- level 1 ------------------------------------------------------------------------------ */

active proctype Producer()
{
  byte i = 0;
  byte p;
  bit old;

  do
  :: i == N -> break
  :: else ->
     if
     :: tail - head == CAP ->                    /* full */
        space_waiter = 1;
        /* full fence */
        if
        :: tail - head < CAP -> space_waiter = 0 /* space now: retry (and write) */
        :: else -> runtime_until_ready(PROD)     /* suspend until notified, then retry */
        fi
     :: else ->
        assert(ring[tail % CAP] == FREE);
        ring[tail % CAP] = i + 1;                /* write the entry */
        tail++;                                  /* store(tail + 1, release) */
        i++;
        /* full fence */
        if
        :: data_waiter == 1 ->
           d_step { old = data_waiter; data_waiter = 0 };
           if
           :: old == 1 -> signal(CONS, VEC)
           :: else -> skip
           fi
        :: else -> skip
        fi
     fi
  od;
  prod_done = 1;
  runtime_idle_forever(PROD)
}

active proctype Consumer()
{
  byte got = 0;
  byte p;
  bit old;

  do
  :: got == N -> break
  :: else ->
     if
     :: tail == head ->                          /* empty */
        data_waiter = 1;
#ifdef BROKEN_NO_RECHECK
        runtime_until_ready(CONS)                /* ReL4: armed, but no re-check */
#else
        /* full fence */
        if
        :: tail != head -> data_waiter = 0       /* data now: retry (and consume) */
        :: else ->
#ifdef BROKEN_DROP_UNREGISTERED
           /* a scheduling point runs before the coroutine is registered as the waiter of VEC
            * and discards the bits nobody waits for */
           if
           :: take(CONS)                         /* and the raise it found is dropped */
           :: skip
           fi;
#endif
           runtime_until_ready(CONS)             /* suspend until notified, then retry */
        fi
#endif
     :: else ->
        assert(ring[head % CAP] == got + 1);     /* in order, exactly once */
        ring[head % CAP] = FREE;                 /* read the entry */
        head++;                                  /* store(head + 1, release) */
        got++;
        /* full fence */
        if
        :: space_waiter == 1 ->
           d_step { old = space_waiter; space_waiter = 0 };
           if
           :: old == 1 -> signal(PROD, VEC)
           :: else -> skip
           fi
        :: else -> skip
        fi
     fi
  od;
  assert(head == N && tail == N);
  cons_done = 1;
  runtime_idle_forever(CONS)
}

/* A peer of another channel served by the consumer's runtime: it raises a different pending
 * bit, so the consumer's runtime sees wake-ups for other coroutines, and two signallers race
 * to wake it. HOSTILE: it also rewrites the hint word it can write. */
#if NEIGHBOUR_SIGNALS > 0
active proctype Neighbour()
{
  byte k = 0;

  do
  :: k < NEIGHBOUR_SIGNALS -> signal(CONS, OTHER); k++
#ifdef HOSTILE
  :: k < NEIGHBOUR_SIGNALS -> pending[CONS] = 0; k++             /* clears every hint */
  :: k < NEIGHBOUR_SIGNALS -> pending[CONS] = pending[CONS] | VEC; k++  /* forges ours */
#endif
  :: else -> break
  od;
  nb_done = 1
}
#endif

/* Lost wake-up monitor. A thread blocked in futex_wait while its coroutine still waits is
 * stuck if nobody is left who could wake it: both sides asleep, or the consumer asleep with a
 * message in the ring and the producer finished -- in either case once the neighbour has sent
 * all its signals (until then its wake-up may be in flight: a producer that finds `state`
 * already exchanged to running by the neighbour rightly leaves the futex_wake to it). */
#ifndef NO_MONITOR
active proctype Monitor()
{
end_watch:
  atomic {
    nb_done &&
    (   (asleep[PROD] && !prod_done && asleep[CONS] && !cons_done)
     || (asleep[CONS] && !cons_done && prod_done && tail != head)) ->
    assert(false)
  }
}
#endif

ltl live { <> (head == N) }
