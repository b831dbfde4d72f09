/*
 * fuzz_main.c — a deterministic stand-in for libFuzzer, linked into the
 * rel_fuzz_* executables the suite runs (the real libFuzzer build links the
 * same targets without this file, see README.md).
 *
 * It runs each seed the target offers (rel_fuzz_seeds), then REL_FUZZ_RUNS
 * inputs made by mutating seeds and earlier inputs with a PRNG seeded by
 * REL_SEED: bit flips, byte sets to interesting values, inserts, deletes,
 * duplications, truncation, splices, and now and then pure random bytes.
 * A target reports a violation by abort() (as under libFuzzer); a crash is
 * a failure too.
 *
 *   rel_fuzz_X                      run the deterministic campaign
 *   rel_fuzz_X --write-corpus DIR   write the seeds as files (for libFuzzer)
 *   rel_fuzz_X FILE...              run the given inputs (reproduce a crash)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"
#include "rel_common.h"

typedef struct input {
  uint8_t *p;
  size_t n;
} input;

static input *pool;
static size_t npool, cappool;

static void add_seed(const uint8_t *p, size_t n) {
  if (npool == cappool) {
    cappool = cappool ? cappool * 2 : 64;
    pool = realloc(pool, cappool * sizeof *pool);
    REL_CHECK(pool != NULL, "realloc");
  }
  pool[npool].p = malloc(n ? n : 1);
  REL_CHECK(pool[npool].p != NULL, "malloc");
  if (n) memcpy(pool[npool].p, p, n);
  pool[npool].n = n;
  npool++;
}

static size_t mutate(rel_rng *r, uint8_t *b, size_t n, size_t cap) {
  static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x0a, 0x12,
                                        0x22, 0x08, 0x10, 0x1a, 0xc0, 0xed, 0xf4, 0x27};
  int k = 1 + (int)rel_below(r, 4);
  for (int i = 0; i < k; i++) {
    switch (rel_below(r, 8)) {
      case 0:
        if (n) b[rel_below(r, n)] ^= (uint8_t)(1u << rel_below(r, 8));
        break;
      case 1:
        if (n) b[rel_below(r, n)] = interesting[rel_below(r, sizeof interesting)];
        break;
      case 2: /* insert random bytes */
        if (n < cap) {
          size_t at = rel_below(r, n + 1), m = 1 + rel_below(r, 8);
          if (m > cap - n) m = cap - n;
          memmove(b + at + m, b + at, n - at);
          for (size_t j = 0; j < m; j++) b[at + j] = (uint8_t)rel_rand(r);
          n += m;
        }
        break;
      case 3: /* delete a range */
        if (n) {
          size_t at = rel_below(r, n), m = 1 + rel_below(r, 8);
          if (m > n - at) m = n - at;
          memmove(b + at, b + at + m, n - at - m);
          n -= m;
        }
        break;
      case 4: /* truncate */
        if (n) n = rel_below(r, n + 1);
        break;
      case 5: /* duplicate a chunk */
        if (n && n < cap) {
          size_t at = rel_below(r, n), m = 1 + rel_below(r, 16);
          if (m > n - at) m = n - at;
          if (m > cap - n) m = cap - n;
          memmove(b + at + m, b + at, n - at);
          n += m;
        }
        break;
      case 6: /* splice another pool entry in */
        if (npool) {
          input *o = &pool[rel_below(r, npool)];
          if (o->n) {
            size_t from = rel_below(r, o->n), m = 1 + rel_below(r, o->n - from);
            size_t at = n ? rel_below(r, n) : 0;
            if (at + m > cap) m = cap - at;
            memcpy(b + at, o->p + from, m);
            if (at + m > n) n = at + m;
          }
        }
        break;
      default: /* a varint-ish length byte gets large */
        if (n) b[rel_below(r, n)] |= 0x80;
        break;
    }
  }
  return n;
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  uint8_t *b = malloc(1 << 24);
  size_t n = fread(b, 1, 1 << 24, f);
  fclose(f);
  LLVMFuzzerTestOneInput(b, n);
  free(b);
  return 0;
}

int main(int argc, char **argv) {
  rel_fuzz_seeds(add_seed);
  if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
    mkdir(argv[2], 0755);
    for (size_t i = 0; i < npool; i++) {
      char p[1024];
      snprintf(p, sizeof p, "%s/seed-%03zu", argv[2], i);
      FILE *f = fopen(p, "wb");
      REL_CHECK(f != NULL, "%s: %s", p, strerror(errno));
      fwrite(pool[i].p, 1, pool[i].n, f);
      fclose(f);
    }
    printf("%zu seeds written to %s\n", npool, argv[2]);
    return 0;
  }
  if (argc > 1) {
    int bad = 0;
    for (int i = 1; i < argc; i++) bad |= run_file(argv[i]);
    return bad;
  }
  int64_t runs = rel_env_int("REL_FUZZ_RUNS", 2000);
  rel_rng r = {(uint64_t)rel_env_int("REL_SEED", 20261121)};
  size_t cap = 1 << 16;
  uint8_t *b = malloc(cap);
  REL_CHECK(b != NULL, "malloc");
  int64_t execs = 0;
  size_t nseeds = npool;
  for (size_t i = 0; i < nseeds; i++, execs++) LLVMFuzzerTestOneInput(pool[i].p, pool[i].n);
  for (int64_t i = 0; i < runs; i++, execs++) {
    size_t n;
    if (rel_below(&r, 16) == 0 || npool == 0) {
      n = rel_below(&r, 512);
      for (size_t j = 0; j < n; j++) b[j] = (uint8_t)rel_rand(&r);
    } else {
      input *src = &pool[rel_below(&r, npool)];
      n = src->n < cap ? src->n : cap;
      memcpy(b, src->p, n);
      n = mutate(&r, b, n, cap);
    }
    LLVMFuzzerTestOneInput(b, n);
    /* Keep some inputs for later mutation, like a (blind) corpus. */
    if (rel_below(&r, 8) == 0 && npool < 4096) add_seed(b, n);
  }
  printf("%s: %" PRId64 " executions (%zu seeds), no violation\n", argv[0], execs, nseeds);
  for (size_t i = 0; i < npool; i++) free(pool[i].p);
  free(pool);
  free(b);
  rel_fuzz_cleanup();
  return 0;
}
