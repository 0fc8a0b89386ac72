/* DNS packets on ldns (see codec.h). */
#include "dns/codec.h"

#include "core/ascii.h"
#include "maild/error.h"

#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

int maild__dns_name(const char *in, char out[MAILD_DNS_NAME_MAX + 1]) {
  size_t len = strlen(in), i, label = 0;

  if (len > 0 && in[len - 1] == '.')
    len--;
  if (len == 0 || len > MAILD_DNS_NAME_MAX)
    return MAILD_ERR_SYNTAX;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '.') {
      if (label == 0 || in[i - 1] == '-')
        return MAILD_ERR_SYNTAX;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || (c == '-' && label > 0) || c == '_') {
      if (++label > 63)
        return MAILD_ERR_SYNTAX;
    } else {
      return MAILD_ERR_SYNTAX;
    }
    out[i] = (char)maild__ascii_lower(c);
  }
  if (label == 0 || in[len - 1] == '-')
    return MAILD_ERR_SYNTAX;
  out[len] = '\0';
  return 0;
}

maild_ssize maild__dns_query(uint8_t *out, size_t cap, uint16_t id,
                             const char *name, uint16_t type, int tcp) {
  ldns_rdf *dname;
  ldns_pkt *pkt;
  uint8_t *wire = NULL;
  size_t size = 0, off = tcp ? 2 : 0;
  ldns_status st;

  if (out == NULL || name == NULL)
    return MAILD_ERR_INVAL;
  dname = ldns_dname_new_frm_str(name);
  if (dname == NULL)
    return MAILD_ERR_INVAL;
  pkt =
      ldns_pkt_query_new(dname, (ldns_rr_type)type, LDNS_RR_CLASS_IN, LDNS_RD);
  if (pkt == NULL) {
    ldns_rdf_deep_free(dname);
    return MAILD_ERR_NOMEM;
  }
  ldns_pkt_set_id(pkt, id);
  st = ldns_pkt2wire(&wire, pkt, &size);
  ldns_pkt_free(pkt);
  if (st != LDNS_STATUS_OK || wire == NULL) {
    free(wire);
    return MAILD_ERR_NOMEM;
  }
  if (size + off > cap || size > 65535) {
    free(wire);
    return MAILD_ERR_NOSPC;
  }
  if (tcp) {
    out[0] = (uint8_t)(size >> 8);
    out[1] = (uint8_t)size;
  }
  memcpy(out + off, wire, size);
  free(wire);
  return (maild_ssize)(size + off);
}

/* A domain-name field as text: lower case, no final dot ("" for root). */
static int rdf_name(const ldns_rdf *rdf, char out[MAILD_DNS_NAME_MAX + 1]) {
  char *s;
  size_t len, i;

  if (rdf == NULL || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME)
    return MAILD_ERR_SYNTAX;
  s = ldns_rdf2str(rdf);
  if (s == NULL)
    return MAILD_ERR_SYNTAX;
  len = strlen(s);
  if (len > 0 && s[len - 1] == '.')
    len--;
  if (len > MAILD_DNS_NAME_MAX) {
    free(s);
    return MAILD_ERR_SYNTAX;
  }
  for (i = 0; i < len; i++)
    out[i] = (char)maild__ascii_lower((unsigned char)s[i]);
  out[len] = '\0';
  free(s);
  return 0;
}

static uint32_t soa_minimum(const ldns_pkt *pkt) {
  ldns_rr_list *auth = ldns_pkt_authority(pkt);
  size_t i;

  for (i = 0; auth != NULL && i < ldns_rr_list_rr_count(auth); i++) {
    ldns_rr *rr = ldns_rr_list_rr(auth, i);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
      uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
      uint32_t ttl = ldns_rr_ttl(rr);
      return min < ttl ? min : ttl; /* RFC 2308 5 */
    }
  }
  return 0;
}

static int take_rr(const ldns_rr *rr, maild_dns_rr *out) {
  ldns_rr_type t = ldns_rr_get_type(rr);
  const ldns_rdf *f;

  memset(out, 0, sizeof(*out));
  out->type = (uint16_t)t;
  out->ttl = ldns_rr_ttl(rr);
  if (rdf_name(ldns_rr_owner(rr), out->owner) != 0)
    return -1;
  switch (t) {
  case LDNS_RR_TYPE_A:
  case LDNS_RR_TYPE_AAAA:
    f = ldns_rr_rdf(rr, 0);
    if (f == NULL || ldns_rdf_size(f) != (t == LDNS_RR_TYPE_A ? 4u : 16u))
      return -1;
    memcpy(out->addr, ldns_rdf_data(f), ldns_rdf_size(f));
    return 0;
  case LDNS_RR_TYPE_MX:
    if (ldns_rr_rd_count(rr) != 2 || ldns_rr_rdf(rr, 0) == NULL ||
        ldns_rdf_size(ldns_rr_rdf(rr, 0)) != 2)
      return -1;
    out->pref = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
    return rdf_name(ldns_rr_rdf(rr, 1), out->target) == 0 ? 0 : -1;
  case LDNS_RR_TYPE_CNAME:
    return rdf_name(ldns_rr_rdf(rr, 0), out->target) == 0 ? 0 : -1;
  default:
    return 1; /* not for us */
  }
}

int maild__dns_parse(const uint8_t *in, size_t len, uint16_t id,
                     const char *name, uint16_t type, maild_dns_answer *ans) {
  ldns_pkt *pkt = NULL;
  ldns_rr_list *q, *a;
  ldns_rr *qr;
  char qname[MAILD_DNS_NAME_MAX + 1];
  size_t i;
  int rc = MAILD_ERR_SYNTAX;

  if (in == NULL || name == NULL || ans == NULL)
    return MAILD_ERR_INVAL;
  memset(ans, 0, sizeof(*ans));
  if (len < 12 || ldns_wire2pkt(&pkt, in, len) != LDNS_STATUS_OK)
    return MAILD_ERR_SYNTAX;
  q = ldns_pkt_question(pkt);
  if (ldns_pkt_id(pkt) != id || !ldns_pkt_qr(pkt) || q == NULL ||
      ldns_rr_list_rr_count(q) != 1)
    goto done;
  qr = ldns_rr_list_rr(q, 0);
  if (ldns_rr_get_type(qr) != (ldns_rr_type)type ||
      ldns_rr_get_class(qr) != LDNS_RR_CLASS_IN ||
      rdf_name(ldns_rr_owner(qr), qname) != 0 || strcmp(qname, name) != 0)
    goto done;
  ans->rcode = (int)ldns_pkt_get_rcode(pkt);
  ans->truncated = ldns_pkt_tc(pkt);
  a = ldns_pkt_answer(pkt);
  for (i = 0; a != NULL && i < ldns_rr_list_rr_count(a); i++) {
    ldns_rr *rr = ldns_rr_list_rr(a, i);
    int k;
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || ans->n == MAILD_DNS_RR_MAX)
      continue;
    k = take_rr(rr, &ans->rr[ans->n]);
    if (k < 0)
      goto done; /* a record we use, malformed: distrust the whole */
    if (k == 0)
      ans->n++;
  }
  ans->neg_ttl = soa_minimum(pkt);
  rc = 0;
done:
  ldns_pkt_free(pkt);
  return rc;
}
