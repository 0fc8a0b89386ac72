/*
 * Types shared by every libmaild module: the export macro, the signed size
 * type, the allocator hooks and the reply an embedder gives back to an
 * engine. Nothing here depends on libuv, mbedTLS or ldns.
 */
#ifndef MAILD_COMMON_H
#define MAILD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MAILD_EXTERN __attribute__((visibility("default")))
#else
#define MAILD_EXTERN
#endif

#define MAILD_VERSION_MAJOR 0
#define MAILD_VERSION_MINOR 1
#define MAILD_VERSION_PATCH 0

/* A byte count, or a negative maild error code (see error.h). */
typedef ptrdiff_t maild_ssize;

/*
 * Allocator hooks. Every object takes a `const maild_mem *` at construction
 * (NULL means malloc/free); the struct is copied. All allocations of that
 * object and of everything it creates go through these hooks, with
 * `user_data` passed last, so a test can count allocations and fail the
 * N-th one. `calloc` and `realloc` follow the C library contracts.
 */
typedef struct maild_mem {
  void *user_data;
  void *(*malloc)(size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
} maild_mem;

/*
 * A reply chosen by the embedder for a protocol event. `code` 0 means "the
 * engine's default reply". `enhanced` (RFC 3463, "5.1.1") may be NULL, in
 * which case the engine supplies the enhanced code that fits the event when
 * the session negotiated ENHANCEDSTATUSCODES. `text` may be NULL (default
 * text) and may hold several lines separated by '\n'; control characters are
 * replaced. The engine copies all strings before the call returns.
 */
typedef struct maild_reply {
  int code;
  const char *enhanced;
  const char *text;
} maild_reply;

#ifdef __cplusplus
}
#endif
#endif
