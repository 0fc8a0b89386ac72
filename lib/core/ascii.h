/*
 * Locale-free ASCII helpers. Protocol keywords and address domains compare
 * without regard to ASCII case (RFC 5321 2.4), and must never depend on the
 * process locale, so <ctype.h> is not used for them.
 */
#ifndef MAILD_CORE_ASCII_H
#define MAILD_CORE_ASCII_H

#include <stddef.h>
#include <stdint.h>

static inline unsigned maild__ascii_lower(unsigned ch) {
  return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* Nonzero if s[0..n) equals the NUL-terminated `word`, ignoring ASCII
   case. */
static inline int maild__ascii_caseeq(const char *s, size_t n,
                                      const char *word) {
  size_t i;

  for (i = 0; i < n; i++) {
    if (word[i] == '\0' || maild__ascii_lower((unsigned char)s[i]) !=
                               maild__ascii_lower((unsigned char)word[i]))
      return 0;
  }
  return word[n] == '\0';
}

/* CTL (RFC 5234 B.1): 0x00-0x1f and DEL. */
static inline int maild__ascii_is_ctl(unsigned ch) {
  return ch < 0x20 || ch == 0x7f;
}

/* FNV-1a of a NUL-terminated string, for the open-addressing tables of
   canonical addresses and domains (keys from files the admin wrote, not
   from peers). */
static inline size_t maild__str_hash(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);

  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= UINT64_C(1099511628211);
  }
  return (size_t)h;
}

#endif
