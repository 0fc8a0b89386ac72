/*
 * Transcript tests for the SMTP server engine. A transcript file holds the
 * client's octets, the server's expected replies and the expected callback
 * events; the driver replays it with the client input split into chunks of
 * every size from 1 to the whole, so a parser that only works on whole
 * lines fails. Format, one item per line:
 *
 *   # comment
 *   O: NAME VALUE     engine option before the session starts
 *                     (NAME from MAILD_OPTION_MAP, e.g. MAX_RECIPIENTS)
 *   C: text           client line; CRLF is appended
 *   C~ text           client octets, no CRLF appended
 *   S: text           expected server line (CRLF appended)
 *   E: text           expected callback event, in order
 *   A: EVENT ACTION   scripted answer for the next EVENT callback
 *                     (helo mail rcpt data_start chunk data_end starttls
 *                     auth); ACTION: "defer" (answered with the default
 *                     once the engine stalls), "defer CODE ENH TEXT",
 *                     "CODE ENH TEXT" (ENH may be "-"), or "fail"
 *   T: tls            the STARTTLS handshake completes here: the input
 *                     before is fed, then tls_started() is called
 *   X: closed|open    the session's state at the end
 *
 * In C:, C~ and S: text, \r \n \t \0 \\ and \xHH are escapes; events
 * are logged with the same escapes, so E: lines are compared as written.
 */
#ifndef MAILD_TRANSCRIPT_H
#define MAILD_TRANSCRIPT_H

#include <stddef.h>

typedef struct transcript transcript;

/* Loads a file; returns NULL and prints why on failure. */
transcript *transcript_load(const char *path);
void transcript_free(transcript *t);

/* Replays at one chunk size (0 = all at once). Returns 0 when output and
   events match; otherwise prints a report and returns -1. */
int transcript_run(const transcript *t, size_t chunk);

/* Replays with every chunk size from 1 to the input length. */
int transcript_run_all_splits(const transcript *t);

/* Allocation-failure sweep: replays once failing the N-th allocation, for
   every N up to the number the scenario makes. Checks only that nothing
   crashes or leaks. Returns the number of runs. */
size_t transcript_alloc_sweep(const transcript *t);

/* Total client octets. */
size_t transcript_input_len(const transcript *t);

#endif
