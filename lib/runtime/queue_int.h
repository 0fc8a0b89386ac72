/*
 * Private to the queue: the record of a queued message (out_msg), shared
 * by outbound.c (attempts: the SMTP client sessions and local deliveries)
 * and queue.c (which records are in memory: the window, the scans of the
 * spool that bring the others back, the administrator's commands).
 */
#ifndef MAILD_RUNTIME_QUEUE_INT_H
#define MAILD_RUNTIME_QUEUE_INT_H

#include "runtime/server_int.h"

#include "maild/reply.h"

/* What a report will say about a recipient: why it failed, or, for
   NOTIFY=SUCCESS, where it went. */
#define REASON_MAX 300u
typedef struct out_fail {
  const char *action; /* NULL: failed; "delayed", "delivered", "relayed" */
  char status[MAILD_ENHANCED_MAX + 1];
  char relay[80];
  char diag[REASON_MAX + 1];
} out_fail;

/* The reports an attempt may send its sender, in this order. */
enum {
  OUT_BOUNCE,  /* recipients that failed */
  OUT_SUCCESS, /* NOTIFY=SUCCESS recipients delivered or relayed */
  OUT_DELAY,   /* the delay warning, once per message */
  OUT_REPORTS
};

/*
 * A queued message in memory: an id, its arrival and its retry state;
 * everything else stays in the spool. At most QUEUE_WINDOW of them exist.
 */
struct out_msg {
  out_msg *next, *prev; /* srv->out_msgs */
  out_msg *hnext;       /* the next in its bucket of srv->out_index */
  maild_server *srv;
  char id[MAILD_SPOOL_ID_LEN + 1];
  int64_t arrival_usec;
  unsigned attempts;
  uint64_t due; /* the queue clock's time of the next attempt; never
                   earlier than the one in the spool (so it may leave) */
  int busy;     /* an attempt runs */
  /* The attempt. */
  uv_work_t req;
  maild_envelope *env;
  int fd;
  int err;
  uint8_t *result; /* per recipient: 0, DONE, FAILED or RESULT_TEMP */
  out_fail *fail;  /* per recipient, once one has something to report */
  /* The reports to send, built with the results (outbound.c). */
  maild_buf report[OUT_REPORTS];
  uint64_t ended; /* queue clock when the attempt's results came */
  size_t jobs_left;
  uint64_t next_due; /* after this attempt (0: the lifetime is over) */
  uint64_t disk_due; /* what the spool records with the results */
  int all_final;
  int expired;
  int held;     /* on hold: no attempt until released */
  int was_held; /* a hold marker may exist: remove it with the message */
  int deleted;  /* deleted while an attempt ran */
};

/* outbound.c */
/* The queue's clock: milliseconds since the epoch, from the system or
   from the embedder's hook (maild_server_set_clock). */
uint64_t maild__queue_now(const maild_server *srv);
/* Makes the queue's timer fire by `due` at the latest. */
void maild__queue_schedule(maild_server *srv, uint64_t due);

/* queue.c */
/* A new record, in the list and the index, due at `due` after `attempts`
   attempts; NULL when out of memory. */
out_msg *maild__queue_record_new(maild_server *srv, const char *id,
                                 int64_t arrival_usec, uint64_t due,
                                 unsigned attempts);
/* Frees a record and what its attempt held. `finished`: the message left
   the queue (delivered, bounced, deleted), so there is room for another. */
void maild__queue_record_free(out_msg *m, int finished);
out_msg *maild__queue_find(const maild_server *srv, const char *id);
/* A record may now leave memory (waits for a later attempt, or held). */
void maild__queue_may_leave(maild_server *srv);
/* The timer's pass is over: nothing in memory that may start is due
   before `soonest` (UINT64_MAX: nothing); `may_leave`: some record could
   leave memory. Scans the spool when it may hold a message due sooner that
   could come in, or when the periodic scan is due. Returns when the queue
   wants its timer to look again for the spool's sake (UINT64_MAX: no
   need). */
uint64_t maild__queue_pass_done(maild_server *srv, uint64_t now,
                                uint64_t soonest, int may_leave);

#endif
