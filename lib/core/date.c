/* RFC 5322 dates (see date.h). */
#include "core/date.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

size_t maild__date_format(char out[MAILD_DATE_SIZE], int64_t t) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  time_t tt = (time_t)t;
  struct tm tm;
  int n;

  if (gmtime_r(&tt, &tm) == NULL)
    memset(&tm, 0, sizeof(tm));
  n = snprintf(out, MAILD_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d +0000",
               days[(unsigned)tm.tm_wday % 7], tm.tm_mday,
               months[(unsigned)tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
               tm.tm_min, tm.tm_sec);
  return n < 0 ? 0 : n >= MAILD_DATE_SIZE ? MAILD_DATE_SIZE - 1 : (size_t)n;
}
