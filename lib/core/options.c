/*
 * The options object: one value per maild_option, defaults and ranges from
 * the MAILD_OPTION_MAP table in maild/options.h.
 */
#include "maild/options.h"
#include "maild/error.h"
#include "core/mem.h"

#include <string.h>

enum { KIND_UINT, KIND_STRING };

typedef struct option_spec {
  int kind;
  uint64_t def;
  uint64_t min;
  uint64_t max;
} option_spec;

static const option_spec specs[MAILD_OPT__COUNT] = {
#define OPTION_SPEC_(name, kind, def, min, max) {KIND_##kind, def, min, max},
    MAILD_OPTION_MAP(OPTION_SPEC_)
#undef OPTION_SPEC_
};

struct maild_options {
  maild_mem mem;
  uint64_t uints[MAILD_OPT__COUNT];
  char *strings[MAILD_OPT__COUNT];
};

static int key_is(maild_option key, int kind) {
  return (unsigned)key < MAILD_OPT__COUNT && specs[key].kind == kind;
}

int maild_options_new(maild_options **out, const maild_mem *mem) {
  maild_mem m;
  maild_options *opt;
  size_t i;

  if (out == NULL)
    return MAILD_ERR_INVAL;
  maild__mem_init(&m, mem);
  opt = maild__calloc(&m, 1, sizeof(*opt));
  if (opt == NULL)
    return MAILD_ERR_NOMEM;
  opt->mem = m;
  for (i = 0; i < MAILD_OPT__COUNT; i++)
    opt->uints[i] = specs[i].def;
  *out = opt;
  return 0;
}

void maild_options_del(maild_options *opt) {
  size_t i;

  if (opt == NULL)
    return;
  for (i = 0; i < MAILD_OPT__COUNT; i++)
    maild__free(&opt->mem, opt->strings[i]);
  maild__free(&opt->mem, opt);
}

int maild_options_set_uint(maild_options *opt, maild_option key,
                           uint64_t value) {
  if (opt == NULL || !key_is(key, KIND_UINT))
    return MAILD_ERR_INVAL;
  if (value < specs[key].min || value > specs[key].max)
    return MAILD_ERR_RANGE;
  opt->uints[key] = value;
  return 0;
}

int maild_options_set_string(maild_options *opt, maild_option key,
                             const char *value) {
  char *copy = NULL;
  const char *p;

  if (opt == NULL || !key_is(key, KIND_STRING))
    return MAILD_ERR_INVAL;
  if (value != NULL) {
    for (p = value; *p != '\0'; p++) {
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return MAILD_ERR_INVAL;
    }
    copy = maild__strndup(&opt->mem, value, strlen(value));
    if (copy == NULL)
      return MAILD_ERR_NOMEM;
  }
  maild__free(&opt->mem, opt->strings[key]);
  opt->strings[key] = copy;
  return 0;
}

uint64_t maild_options_get_uint(const maild_options *opt, maild_option key) {
  if (!key_is(key, KIND_UINT))
    return 0;
  return opt != NULL ? opt->uints[key] : specs[key].def;
}

const char *maild_options_get_string(const maild_options *opt,
                                     maild_option key) {
  if (opt == NULL || !key_is(key, KIND_STRING))
    return NULL;
  return opt->strings[key];
}
