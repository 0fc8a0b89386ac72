/*
 * CRC-32 (the zlib/gzip/PNG one). Used by the spool to make its files
 * self-validating.
 */
#ifndef MAILD_CORE_CRC32_H
#define MAILD_CORE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC-32 over `len` octets at `data`. Start with crc = 0; the
 * result of one call is the `crc` of the next, so
 * maild__crc32(maild__crc32(0, a, n), b, m) equals the CRC of a then b.
 * maild__crc32(0, "123456789", 9) == 0xCBF43926.
 */
uint32_t maild__crc32(uint32_t crc, const void *data, size_t len);

#endif
