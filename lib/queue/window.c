/*
 * Picks and trades for the queue's window (see window.h). A pick is a
 * binary heap of at most K entries whose top is the entry to give up
 * first, so each offer costs O(log K) and a scan of N spool entries needs
 * memory for K of them, not N.
 */
#include "queue/window.h"

#include <string.h>

#include "core/mem.h"
#include "maild/error.h"

int maild__due_pick_init(maild_due_pick *p, size_t cap, int order,
                         const maild_mem *mem) {
  memset(p, 0, sizeof(*p));
  maild__mem_init(&p->mem, mem);
  p->cap = cap;
  p->order = order;
  if (cap == 0)
    return 0;
  p->heap = maild__calloc(&p->mem, cap, sizeof(*p->heap));
  return p->heap != NULL ? 0 : MAILD_ERR_NOMEM;
}

void maild__due_pick_free(maild_due_pick *p) {
  maild__free(&p->mem, p->heap);
  p->heap = NULL;
  p->n = p->cap = 0;
}

/* 1 when `a` is a worse keep than `b`: due later (SOONEST) or earlier
   (LATEST), ties broken by the id the same way. */
static int worse(const maild_due_pick *p, const maild_due_entry *a,
                 const maild_due_entry *b) {
  int c = a->due != b->due ? (a->due > b->due ? 1 : -1) : strcmp(a->id, b->id);

  return p->order == MAILD_DUE_LATEST ? c < 0 : c > 0;
}

static void swap(maild_due_entry *a, maild_due_entry *b) {
  maild_due_entry t = *a;

  *a = *b;
  *b = t;
}

/* Restores the heap below `i`, among the first `n` entries. */
static void sift_down(maild_due_pick *p, size_t i, size_t n) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, top = i;
    if (l < n && worse(p, &p->heap[l], &p->heap[top]))
      top = l;
    if (r < n && worse(p, &p->heap[r], &p->heap[top]))
      top = r;
    if (top == i)
      return;
    swap(&p->heap[i], &p->heap[top]);
    i = top;
  }
}

static void sift_up(maild_due_pick *p, size_t i) {
  while (i > 0 && worse(p, &p->heap[i], &p->heap[(i - 1) / 2])) {
    swap(&p->heap[i], &p->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
}

void maild__due_pick_offer(maild_due_pick *p, const char *id, uint64_t due) {
  maild_due_entry e;

  e.due = due;
  memcpy(e.id, id, MAILD_SPOOL_ID_LEN);
  e.id[MAILD_SPOOL_ID_LEN] = '\0';
  if (p->n < p->cap) {
    p->heap[p->n] = e;
    sift_up(p, p->n++);
    return;
  }
  p->passed++;
  if (p->n == 0 || !worse(p, &p->heap[0], &e))
    return;
  p->heap[0] = e;
  sift_down(p, 0, p->n);
}

const maild_due_entry *maild__due_pick_sort(maild_due_pick *p, size_t *n) {
  size_t i;

  /* Heapsort: the worst goes to the end each time, so the best ends
     first (and the array is no longer a heap). */
  for (i = p->n; i > 1; i--) {
    swap(&p->heap[0], &p->heap[i - 1]);
    sift_down(p, 0, i - 1);
  }
  *n = p->n;
  return p->heap;
}

size_t maild__window_trade(const uint64_t *found, size_t nfound,
                           const uint64_t *mine, size_t nmine, size_t room,
                           size_t *leave) {
  size_t in = nfound < room ? nfound : room, out = 0;

  while (in < nfound && out < nmine && found[in] < mine[out]) {
    in++;
    out++;
  }
  *leave = out;
  return in;
}
