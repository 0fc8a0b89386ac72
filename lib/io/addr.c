/* Numeric socket addresses (see addr.h). */
#include "io/addr.h"

#include "maild/error.h"

#include <string.h>

int maild__addr_parse(const char *host, unsigned port,
                      struct sockaddr_storage *ss) {
  int err;

  memset(ss, 0, sizeof(*ss));
  if (host == NULL || port > 65535)
    return MAILD_ERR_INVAL;
  if (strchr(host, ':') != NULL)
    err = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
  else
    err = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
  if (err != 0) {
    memset(ss, 0, sizeof(*ss));
    return MAILD_ERR_INVAL;
  }
  return 0;
}

unsigned maild__addr_port(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET6
                   ? ((const struct sockaddr_in6 *)ss)->sin6_port
                   : ((const struct sockaddr_in *)ss)->sin_port);
}

void maild__addr_set_port(struct sockaddr_storage *ss, unsigned port) {
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}
