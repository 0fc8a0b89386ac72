/*
 * The queue's window (layer 1, pure): which queued messages the runtime
 * keeps a record of in memory. A queue of millions of messages must not
 * hold millions of records, so the runtime keeps at most a window of them;
 * the others wait in the spool with the time of their next attempt, and a
 * scan of the spool brings back those due soonest when there is room.
 *
 * These helpers hold no I/O and no clock, so the choices are tested alone:
 *   - a pick keeps, of entries offered one at a time (a directory listing,
 *     the records in memory), the K due soonest or the K due latest, in
 *     memory for K entries however many are offered;
 *   - a trade decides how the entries a scan found and the records in
 *     memory change places when the window is full.
 */
#ifndef MAILD_QUEUE_WINDOW_H
#define MAILD_QUEUE_WINDOW_H

#include "maild/common.h"
#include "queue/spool.h"

/* A queued message: its id and when it is due (queue clock, ms since the
   epoch; UINT64_MAX: not before an administrator acts, such as held). */
typedef struct maild_due_entry {
  uint64_t due;
  char id[MAILD_SPOOL_ID_LEN + 1];
} maild_due_entry;

enum maild_due_order {
  MAILD_DUE_SOONEST = 0, /* keep the entries due first */
  MAILD_DUE_LATEST = 1   /* keep the entries due last */
};

/* Ties between equal due times go to the smaller id (the earlier
   arrival) for SOONEST and to the larger for LATEST, so a pick is the
   same whatever the order of the offers. */
typedef struct maild_due_pick {
  maild_due_entry *heap; /* the kept entries, the one to drop first on top */
  size_t n, cap;
  int order;       /* maild_due_order */
  uint64_t passed; /* entries offered and not kept (or pushed out) */
  maild_mem mem;
} maild_due_pick;

/*
 * Starts a pick of at most `cap` entries (0 keeps none, and only counts).
 * `mem` is copied (NULL: the C allocator). Returns 0 or MAILD_ERR_NOMEM.
 */
int maild__due_pick_init(maild_due_pick *p, size_t cap, int order,
                         const maild_mem *mem);

/* Offers an entry (`id`: MAILD_SPOOL_ID_LEN characters). Allocates
   nothing. */
void maild__due_pick_offer(maild_due_pick *p, const char *id, uint64_t due);

/*
 * Sorts the kept entries, the best first (soonest for SOONEST, latest for
 * LATEST), and returns them; *n gets their number. Valid until
 * maild__due_pick_free(), the only call allowed after this one.
 */
const maild_due_entry *maild__due_pick_sort(maild_due_pick *p, size_t *n);

/* Frees the entries; `p` may be initialised again. */
void maild__due_pick_free(maild_due_pick *p);

/*
 * How found entries enter a window: `found[0..nfound)`, the due times of
 * the entries a scan found, soonest first; `mine[0..nmine)`, the due times
 * of the records in memory that may leave it (not in an attempt, not due
 * yet, or held), latest first; `room`, free places in the window. Finds
 * take the room first; then each further find takes the place of a record
 * due after it. Returns how many finds come in (always the first ones);
 * `*leave` gets how many records leave (always the first ones).
 */
size_t maild__window_trade(const uint64_t *found, size_t nfound,
                           const uint64_t *mine, size_t nmine, size_t room,
                           size_t *leave);

#endif
