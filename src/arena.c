/* arena.c — the bump allocator for decoded entries, and growable buffers.
 * All memory comes from sqlite3_malloc64 so that one allocator (and one
 * fault-injection point, SQLITE_CONFIG_MALLOC) covers the whole library. */
#include <protobuf-c/protobuf-c.h>
#include <string.h>

#include "internal.h"

/* sqlite3_malloc guarantees 8-byte alignment, enough for every type an
 * entry holds (pointers, int64_t, double). */
#define ARENA_ALIGN 8
struct arena_chunk {
  arena_chunk *next;
  size_t size, used;
  uint64_t data[];
};

#define ARENA_MIN 8192

void *opl_arena_alloc(arena *a, size_t n) {
  n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  arena_chunk *c = a->head;
  if (!c || c->size - c->used < n) {
    size_t size = n > ARENA_MIN ? n : ARENA_MIN;
    if (c && c->size * 2 > size && c->size * 2 >= n) size = c->size * 2;
    c = sqlite3_malloc64(sizeof *c + size);
    if (!c) {
      a->failed = 1;
      return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

char *opl_arena_strndup(arena *a, const char *s, size_t n) {
  char *p = opl_arena_alloc(a, n + 1);
  if (p) {
    if (n) memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

void opl_arena_reset(arena *a) {
  arena_chunk *keep = a->head;
  if (!keep) return;
  arena_chunk *c = keep->next;
  while (c) {
    arena_chunk *n = c->next;
    sqlite3_free(c);
    c = n;
  }
  keep->next = NULL;
  keep->used = 0;
  a->failed = 0;
}

void opl_arena_free(arena *a) {
  opl_arena_reset(a);
  sqlite3_free(a->head);
  a->head = NULL;
}

static void *pb_alloc(void *ctx, size_t n) { return opl_arena_alloc(ctx, n); }
static void pb_free(void *ctx, void *p) {
  (void)ctx;
  (void)p;
}

void opl_arena_protobuf_allocator(arena *a, ProtobufCAllocator *out) {
  out->alloc = pb_alloc;
  out->free = pb_free;
  out->allocator_data = a;
}

int opl_buf_reserve(buf *b, size_t extra) {
  if (b->cap - b->n >= extra) return OPLOG_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->n < extra) cap *= 2;
  uint8_t *p = sqlite3_realloc64(b->p, cap);
  if (!p) return OPLOG_NOMEM;
  b->p = p;
  b->cap = cap;
  return OPLOG_OK;
}

int opl_buf_append(buf *b, const void *p, size_t n) {
  if (opl_buf_reserve(b, n)) return OPLOG_NOMEM;
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  return OPLOG_OK;
}

void opl_buf_free(buf *b) {
  sqlite3_free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}
