/*
 * executor_wakeup.pml -- uipc executor "need wake-up" path, hybrid mode (level 3, see
 * docs/model.md).
 *
 * One kernel core polls a submission ring while work keeps coming. After an idle window of
 * empty polls it sets need_wakeup = 1, fences, re-checks the ring and, if the ring is still
 * empty, sleeps in futex_wait(&need_wakeup, 1). A submitter publishes its entry, fences, and
 * only if need_wakeup == 1 and exchange(need_wakeup, 0) == 1 does it futex_wake the core.
 * This is the shape of levels 1 + 2 (handshake.pml) with need_wakeup playing both the armed
 * flag and the futex word.
 *
 * NSUB submitters share the ring, each submitting M entries. The ring is modelled as an array
 * with one slot per submission (capacity >= NSUB * M, so back-pressure is not modelled): a
 * submitter reserves a slot with an atomic fetch_add and publishes it by storing a non-zero
 * value into it; the core consumes slots in order and sees a slot as empty until it is
 * published. Promela interleaving is sequentially consistent, standing in for the seq_cst
 * fences; weak memory orders are not modelled.
 *
 * Compile-time switches (spin -D...):
 *   NSUB=k, M=k           submitters and entries per submitter (defaults 2, 3)
 *   IDLE_WINDOW=k         empty polls before the core arms need_wakeup (default 1)
 *   SPURIOUS              futex_wait may return at any time
 *   BROKEN_NO_RECHECK     the core arms need_wakeup and sleeps without re-checking the ring
 *   NO_MONITOR            leave out the lost-wake-up monitor
 *
 * Properties: assertions (each entry consumed exactly once, per-submitter order; the monitor),
 * invalid end states (the only end label is the core's futex sleep once every submission has
 * been consumed; submitters must finish),
 * ltl `live`: <> every submission consumed (pan -a -f).
 */

#ifndef NSUB
#define NSUB 2
#endif
#ifndef M
#define M 3
#endif
#ifndef IDLE_WINDOW
#define IDLE_WINDOW 1
#endif
#define TOTAL (NSUB * M)

byte slot[TOTAL + 1];  /* submission ring; 0 = not published; slot[TOTAL] stays 0 (sentinel) */
byte reserve;          /* next slot to hand to a submitter (fetch_add) */
byte head;             /* next slot the core consumes; core only */
bit  need_wakeup;      /* armed by the core; cleared by exchange in a submitter; futex word */

bit  asleep;           /* model only: the core is blocked in futex_wait(&need_wakeup, 1) */
byte running = NSUB;   /* model only: submitters that have not finished */

inline futex_wake()
{
  asleep = 0
}

/* The blocking half of futex_wait: until woken (or, with SPURIOUS, at any time). */
inline futex_block()
{
  if
  :: asleep == 0
#ifdef SPURIOUS
  :: asleep = 0
#endif
  fi
}

proctype Submitter(byte id)
{
  byte j = 0;
  byte k;
  bit old;

  do
  :: j == M -> break
  :: else ->
     d_step { k = reserve; reserve++ };   /* fetch_add: reserve a slot */
     slot[k] = id * M + j + 1;            /* write + publish the entry (release) */
     j++;
     /* full fence */
     if
     :: need_wakeup == 1 ->
        d_step { old = need_wakeup; need_wakeup = 0 };   /* exchange(need_wakeup, 0) */
        if
        :: old == 1 -> futex_wake()
        :: else -> skip
        fi
     :: else -> skip
     fi
  od;
  running--
}

active proctype Core()
{
  byte idle = 0;
  byte v;
  byte last[NSUB];     /* last sequence number seen per submitter, for the order check */

  do
  :: slot[head] != 0 ->                   /* poll: an entry is there */
     v = slot[head] - 1;
     assert(v / M < NSUB && v % M == last[v / M]);   /* each entry once, in submit order */
     last[v / M]++;
     head++;
     idle = 0
  :: else ->
     if
     :: idle < IDLE_WINDOW -> idle++      /* keep polling */
     :: else ->
        need_wakeup = 1;
        /* full fence */
        if
#ifndef BROKEN_NO_RECHECK
        :: slot[head] != 0 -> need_wakeup = 0   /* work arrived: keep polling */
        :: else ->
#else
        :: true ->                              /* no re-check: sleep regardless */
#endif
           atomic {
             if
             :: need_wakeup == 1 -> asleep = 1  /* futex_wait(&need_wakeup, 1) */
             :: else -> skip
             fi
           };
           /* The sleep is a legitimate place to stop only once every submission has been
            * consumed (head is the core's own variable; nothing can be submitted later). */
           if
           :: head == TOTAL ->
end_sleep:    futex_block()
           :: else ->
              futex_block()
           fi;
           need_wakeup = 0
        fi;
        idle = 0
     fi
  od
}

init
{
  byte s = 0;
  atomic {
    do
    :: s == NSUB -> break
    :: else -> run Submitter(s); s++
    od
  }
}

#ifndef NO_MONITOR
/* Lost wake-up: the core sleeps, every submitter has finished (so nobody will wake it), and
 * entries remain unconsumed. */
active proctype Monitor()
{
end_watch:
  atomic {
    (asleep && running == 0 && head < TOTAL) -> assert(false)
  }
}
#endif

ltl live { <> (head == TOTAL) }
