/*
 * libFuzzer harness for the spool envelope decoder (TESTPLAN F1, D6). The
 * decoder reads files that may be torn or corrupt after a crash, so it must
 * never crash, whatever the octets. The first input octet picks the mode:
 * odd means "repair the END record's CRC first", which lets the fuzzer get
 * past the checksum and into the record structure. Checks: only the
 * documented errors, a reason for every refusal, every decoded field within
 * its bound, and that a decoded envelope encodes back to the same octets
 * (one encoding per envelope). Aborts on violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crc32.h"
#include "core/mem.h"
#include "maild/error.h"
#include "queue/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok)
    abort();
}

static void check_str(const char *s, size_t max) {
  check(s != NULL && strlen(s) <= max);
}

static void check_env(const maild_envelope *e, const uint8_t *in, size_t len,
                      const maild_mem *m) {
  maild_buf b;
  size_t i;

  check(maild__spool_id_valid(e->id));
  check(e->arrival_usec >= 0);
  check(e->return_path_len <= e->msg_size);
  check(e->nrcpt >= 1 && e->nrcpt <= MAILD_ENV_RCPT_MAX);
  check_str(e->sender, MAILD_ENV_ADDR_MAX);
  check_str(e->envid, MAILD_ENV_TEXT_MAX);
  check_str(e->client_addr, MAILD_ENV_TEXT_MAX);
  check_str(e->client_helo, MAILD_ENV_TEXT_MAX);
  check_str(e->auth_id, MAILD_ENV_TEXT_MAX);
  for (i = 0; i < e->nrcpt; i++) {
    check_str(e->rcpt[i].addr, MAILD_ENV_ADDR_MAX);
    check(e->rcpt[i].addr[0] != '\0');
    check_str(e->rcpt[i].orcpt_type, MAILD_ENV_TYPE_MAX);
    check_str(e->rcpt[i].orcpt, MAILD_ENV_ADDR_MAX);
    check(e->rcpt[i].state <= MAILD_RCPT_FAILED);
  }
  maild__buf_init(&b, MAILD_ENV_FILE_MAX);
  check(maild__envelope_encode(e, &b, m) == 0);
  check(maild__buf_used(&b) == len);
  check(memcmp(maild__buf_peek(&b), in, len) == 0);
  maild__buf_free(&b, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  maild_envelope *env = NULL;
  const char *why = NULL;
  maild_mem m;
  uint8_t *copy;
  uint32_t crc;
  int rc;

  if (size < 1)
    return 0;
  maild__mem_init(&m, NULL);
  copy = malloc(size); /* exact size: ASan sees any over-read */
  if (copy == NULL)
    return 0;
  size--;
  memcpy(copy, data + 1, size);
  if ((data[0] & 1) && size >= 4) {
    crc = maild__crc32(0, copy, size - 4);
    copy[size - 4] = (uint8_t)(crc >> 24);
    copy[size - 3] = (uint8_t)(crc >> 16);
    copy[size - 2] = (uint8_t)(crc >> 8);
    copy[size - 1] = (uint8_t)crc;
  }
  rc = maild__envelope_decode(&env, copy, size, &m, &why);
  check(rc == 0 || rc == MAILD_ERR_SYNTAX || rc == MAILD_ERR_UNSUPPORTED ||
        rc == MAILD_ERR_NOMEM);
  if (rc == 0) {
    check(env != NULL && why == NULL);
    check_env(env, copy, size, &m);
    maild__envelope_free(env, &m);
  } else {
    check(env == NULL);
    check(rc == MAILD_ERR_NOMEM || why != NULL);
  }
  free(copy);
  return 0;
}
