/*
 * Dates as mail headers write them (RFC 5322 3.3), always in UTC:
 * "Fri, 27 Nov 2026 06:30:38 +0000". A pure function of its argument.
 */
#ifndef MAILD_CORE_DATE_H
#define MAILD_CORE_DATE_H

#include "maild/common.h"

/* Room for the longest date and its NUL. */
#define MAILD_DATE_SIZE 40

/* Writes the date of `t` (seconds since the epoch) with a NUL; returns its
   length. */
size_t maild__date_format(char out[MAILD_DATE_SIZE], int64_t t);

#endif
