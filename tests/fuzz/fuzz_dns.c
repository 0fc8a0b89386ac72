/*
 * Fuzz harness for the DNS response parser (TESTPLAN F1, N2): whatever a
 * server (or a spoofer) sends, parsing stays inside the packet, and what
 * it accepts is well formed. Properties:
 *  1. An accepted answer holds at most MAILD_DNS_RR_MAX records of the
 *     four kinds the resolver reads, each name NUL-terminated, at most
 *     MAILD_DNS_NAME_MAX octets, lower case.
 *  2. A packet is accepted only as the answer to the query it names: the
 *     same octets checked against another ID are refused.
 * Any violation aborts.
 *
 * Input layout: [qtype selector] then the packet; the query checked is for
 * "mail.test" with the packet's own ID.
 */
#include <stdlib.h>
#include <string.h>

#include "dns/codec.h"
#include "maild/error.h"

static void check_name(const char *s) {
  const char *end = memchr(s, '\0', MAILD_DNS_NAME_MAX + 1);
  size_t n, i;

  if (end == NULL)
    abort(); /* longer than a name can be */
  n = (size_t)(end - s);
  for (i = 0; i < n; i++)
    if (s[i] >= 'A' && s[i] <= 'Z')
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint16_t types[] = {MAILD_DNS_MX, MAILD_DNS_A, MAILD_DNS_AAAA,
                                   MAILD_DNS_CNAME};
  maild_dns_answer a;
  uint16_t type, id;
  size_t i;

  if (size < 3)
    return 0;
  type = types[data[0] % 4];
  data++;
  size--;
  id = (uint16_t)(data[0] << 8 | data[1]);
  if (maild__dns_parse(data, size, id, "mail.test", type, &a) != 0)
    return 0;
  if (a.n > MAILD_DNS_RR_MAX)
    abort();
  for (i = 0; i < a.n; i++) {
    uint16_t t = a.rr[i].type;
    if (t != MAILD_DNS_MX && t != MAILD_DNS_A && t != MAILD_DNS_AAAA &&
        t != MAILD_DNS_CNAME)
      abort();
    check_name(a.rr[i].owner);
    check_name(a.rr[i].target);
  }
  if (maild__dns_parse(data, size, (uint16_t)(id + 1), "mail.test", type, &a) !=
      MAILD_ERR_SYNTAX)
    abort();
  return 0;
}
