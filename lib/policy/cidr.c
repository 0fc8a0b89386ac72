/*
 * CIDR sets (see maild/cidr.h). Networks are kept as 16-octet addresses
 * (IPv4 as IPv4-mapped IPv6, RFC 4291 2.5.5.2) with a prefix length in
 * that space, so one comparison serves both families and a client that
 * arrives on an IPv6 socket as ::ffff:192.0.2.7 matches 192.0.2.0/24.
 * The sets are small (a few trusted networks): a linear scan is enough.
 */
#include "maild/cidr.h"

#include "core/mem.h"
#include "maild/error.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

typedef struct net {
  uint8_t addr[16];
  unsigned prefix; /* 0..128, in the IPv6 space */
} net;

struct maild_cidr_set {
  maild_mem mem;
  net *nets;
  size_t n;
};

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses an address into the IPv6 space; returns the family's bit count
   (32 or 128) or 0. */
static unsigned parse_addr(const char *text, size_t len, uint8_t out[16]) {
  char buf[64];

  if (len == 0 || len >= sizeof(buf))
    return 0;
  memcpy(buf, text, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET, buf, out + 12) == 1) {
    memcpy(out, v4_mapped, sizeof(v4_mapped));
    return 32;
  }
  if (inet_pton(AF_INET6, buf, out) == 1)
    return 128;
  return 0;
}

static int in_prefix(const uint8_t *a, const uint8_t *b, unsigned prefix) {
  unsigned full = prefix / 8, rest = prefix % 8;

  if (memcmp(a, b, full) != 0)
    return 0;
  if (rest == 0)
    return 1;
  return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int maild_cidr_set_new(maild_cidr_set **out, const maild_mem *mem) {
  maild_mem m;
  maild_cidr_set *set;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  set = maild__calloc(&m, 1, sizeof(*set));
  if (set == NULL)
    return MAILD_ERR_NOMEM;
  set->mem = m;
  *out = set;
  return 0;
}

void maild_cidr_set_del(maild_cidr_set *set) {
  if (set == NULL)
    return;
  maild__free(&set->mem, set->nets);
  maild__free(&set->mem, set);
}

int maild_cidr_set_add(maild_cidr_set *set, const char *cidr) {
  const char *slash;
  unsigned bits, prefix, i;
  net nw, *grown;
  char *end;
  unsigned long p;

  if (set == NULL || cidr == NULL)
    return MAILD_ERR_INVAL;
  slash = strchr(cidr, '/');
  bits =
      parse_addr(cidr, slash ? (size_t)(slash - cidr) : strlen(cidr), nw.addr);
  if (bits == 0)
    return MAILD_ERR_SYNTAX;
  prefix = bits;
  if (slash != NULL) {
    if (slash[1] < '0' || slash[1] > '9')
      return MAILD_ERR_SYNTAX;
    p = strtoul(slash + 1, &end, 10);
    if (*end != '\0' || end - (slash + 1) > 3)
      return MAILD_ERR_SYNTAX;
    if (p > bits)
      return MAILD_ERR_RANGE;
    prefix = (unsigned)p;
  }
  nw.prefix = prefix + (128 - bits);
  /* Host bits must be zero. */
  for (i = nw.prefix; i < 128; i++) {
    if (nw.addr[i / 8] & (0x80u >> (i % 8)))
      return MAILD_ERR_INVAL;
  }
  grown = maild__realloc(&set->mem, set->nets, (set->n + 1) * sizeof(*grown));
  if (grown == NULL)
    return MAILD_ERR_NOMEM;
  grown[set->n++] = nw;
  set->nets = grown;
  return 0;
}

int maild_cidr_set_contains(const maild_cidr_set *set, const char *addr) {
  uint8_t a[16];
  size_t i;

  if (set == NULL || addr == NULL || parse_addr(addr, strlen(addr), a) == 0)
    return 0;
  for (i = 0; i < set->n; i++) {
    if (in_prefix(a, set->nets[i].addr, set->nets[i].prefix))
      return 1;
  }
  return 0;
}

size_t maild_cidr_set_count(const maild_cidr_set *set) {
  return set != NULL ? set->n : 0;
}
