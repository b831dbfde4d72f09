/*
 * fuzz_target.h — what each rel_fuzz_*.c target provides. The target is a
 * plain libFuzzer target (LLVMFuzzerTestOneInput, set-up done lazily on the
 * first input); fuzz_main.c drives it in the suite.
 */
#ifndef FUZZ_TARGET_H
#define FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Calls add() with each seed input (valid and near-valid examples). */
void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n));
/* Removes the target's temporary files (called by fuzz_main at the end). */
void rel_fuzz_cleanup(void);

/* A violation: print why and abort, so libFuzzer records the input. */
#define FUZZ_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "fuzz violation at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      abort();                                                                \
    }                                                                         \
  } while (0)

#endif
