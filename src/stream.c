/* stream.c — the sync stream's codec: the magic, frames (kind, length,
 * protobuf message), their order, and the signed trailer that makes a
 * cut, altered or forged stream fail as a whole. Reading goes frame by
 * frame with one frame in memory; what the frames mean for a file is
 * sync.c's. Byte layout: FORMAT.md "Stream". A decoder of hostile input:
 * every size is checked before it is trusted. */
#include <string.h>

#include "internal.h"
#include "oplog.pb-c.h"

#define STREAM_MAGIC "OPLOGSYN"
#define STREAM_MAGIC_LEN 8
#define STREAM_VERSION 1
#define SIGN_TAG "oplog-stream-v1"
#define FRAME_HEAD 5 /* u8 kind || u32 length */

static void put_u32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_u32be(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What is signed: a tag, then the hash of every byte before the trailer. */
static void sign_input(uint8_t out[sizeof SIGN_TAG - 1 + OPLOG_HASH_BYTES], const unsigned char *digest) {
  memcpy(out, SIGN_TAG, sizeof SIGN_TAG - 1);
  memcpy(out + sizeof SIGN_TAG - 1, digest, OPLOG_HASH_BYTES);
}

/* ---------------------------------------------------------------- writing */

static int emit(oplog_db *db, stream_writer *w, const void *p, size_t n, int hashed) {
  if (!n) return OPLOG_OK;
  if (w->write(w->ctx, p, n) != 0) return opl_db_error(db, OPLOG_IO, "stream: the write callback failed");
  if (hashed) crypto_generichash_update(&w->hash, p, n);
  w->bytes += (int64_t)n;
  return OPLOG_OK;
}

int opl_stream_write_begin(oplog_db *db, stream_writer *w, oplog_write_fn write, void *ctx) {
  memset(w, 0, sizeof *w);
  w->write = write;
  w->ctx = ctx;
  crypto_generichash_init(&w->hash, NULL, 0, OPLOG_HASH_BYTES);
  uint8_t head[STREAM_MAGIC_LEN + 1];
  memcpy(head, STREAM_MAGIC, STREAM_MAGIC_LEN);
  head[STREAM_MAGIC_LEN] = STREAM_VERSION;
  return emit(db, w, head, sizeof head, 1);
}

static int write_frame(oplog_db *db, stream_writer *w, int kind, const ProtobufCMessage *m, int hashed) {
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n > UINT32_MAX) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "stream: a frame of %llu bytes is too large", (unsigned long long)n);
  w->frame.n = 0;
  if (opl_buf_reserve(&w->frame, FRAME_HEAD + n)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  w->frame.p[0] = (uint8_t)kind;
  put_u32be(w->frame.p + 1, (uint32_t)n);
  protobuf_c_message_pack(m, w->frame.p + FRAME_HEAD);
  w->frame.n = FRAME_HEAD + n;
  int rc = emit(db, w, w->frame.p, w->frame.n, hashed);
  if (!rc) {
    w->frames++;
    if (kind == FRAME_ENTRY) w->entries++;
  }
  return rc;
}

int opl_stream_write_frame(oplog_db *db, stream_writer *w, int kind, const ProtobufCMessage *m) {
  return write_frame(db, w, kind, m, 1);
}

int opl_stream_write_end(oplog_db *db, stream_writer *w, const unsigned char *sk) {
  unsigned char digest[OPLOG_HASH_BYTES], sig[crypto_sign_BYTES];
  uint8_t msg[sizeof SIGN_TAG - 1 + OPLOG_HASH_BYTES];
  crypto_generichash_final(&w->hash, digest, sizeof digest);
  sign_input(msg, digest);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
  Oplog__V1__StreamTrailer t = OPLOG__V1__STREAM_TRAILER__INIT;
  t.frames = (uint64_t)w->frames;
  t.entries = (uint64_t)w->entries;
  t.hash = (ProtobufCBinaryData){sizeof digest, digest};
  t.signature = (ProtobufCBinaryData){sizeof sig, sig};
  return write_frame(db, w, FRAME_TRAILER, &t.base, 0);
}

void opl_stream_writer_free(stream_writer *w) {
  opl_buf_free(&w->frame);
}

/* ---------------------------------------------------------------- reading */

/* Fills exactly n bytes; *got < n only at the end of the stream. */
static int read_full(oplog_db *db, stream_reader *r, uint8_t *p, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    size_t k = 0;
    if (r->read(r->ctx, p + *got, n - *got, &k) != 0) return opl_db_error(db, OPLOG_IO, "stream: the read callback failed");
    if (k == 0) break;
    if (k > n - *got) return opl_db_error(db, OPLOG_IO, "stream: the read callback returned more than asked");
    *got += k;
  }
  return OPLOG_OK;
}

int opl_stream_read_begin(oplog_db *db, stream_reader *r, oplog_read_fn read, void *ctx, size_t max_frame) {
  memset(r, 0, sizeof *r);
  r->read = read;
  r->ctx = ctx;
  r->max_frame = max_frame;
  crypto_generichash_init(&r->hash, NULL, 0, OPLOG_HASH_BYTES);
  uint8_t head[STREAM_MAGIC_LEN + 1];
  size_t got;
  int rc = read_full(db, r, head, sizeof head, &got);
  if (rc) return rc;
  if (got < sizeof head || memcmp(head, STREAM_MAGIC, STREAM_MAGIC_LEN) != 0)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: not an oplog sync stream (no magic)");
  if (head[STREAM_MAGIC_LEN] != STREAM_VERSION)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: version %u, this library reads version %d", head[STREAM_MAGIC_LEN],
                        STREAM_VERSION);
  crypto_generichash_update(&r->hash, head, sizeof head);
  return OPLOG_OK;
}

static int is_id(const ProtobufCBinaryData *b) { return b->len == OPLOG_ORIGIN_BYTES; }

/* A string of 1..max bytes of UTF-8 without NUL (protobuf-c checks neither). */
static int good_text(const char *s, size_t max) {
  if (!s) return 0;
  size_t n = strnlen(s, max + 1);
  return n >= 1 && n <= max && opl_utf8_valid((const uint8_t *)s, n);
}

/* The fixed sizes and ranges of each message; what a field means for the
 * file (hashes, types, keys) is checked by sync.c. */
static const char *shape_error(int kind, const void *m) {
  switch (kind) {
    case FRAME_HEADER: {
      const Oplog__V1__StreamHeader *h = m;
      if (h->version != STREAM_VERSION) return "header: unknown version";
      if (!is_id(&h->sender)) return "header: sender is not a 32-byte origin id";
      if (h->recipient.len != 0 && !is_id(&h->recipient)) return "header: recipient is not a 32-byte origin id";
      if (h->encrypted && h->recipient.len == 0) return "header: an encrypted stream names no recipient";
      if (h->entries > INT64_MAX) return "header: entry count out of range";
      return NULL;
    }
    case FRAME_TYPE: {
      const Oplog__V1__StreamType *t = m;
      if (!good_text(t->name, 128) || !good_text(t->table, 128) || !good_text(t->aggregate, 256))
        return "type: a name is empty, too long or not text";
      if (t->n_columns < 1 || t->n_columns > OPLOG_MAX_COLUMNS || t->n_key > t->n_columns)
        return "type: column or key count out of range";
      for (size_t i = 0; i < t->n_columns; i++)
        if (!t->columns[i] || !good_text(t->columns[i]->name, 128) || !t->columns[i]->decl ||
            strlen(t->columns[i]->decl) > 1024)
          return "type: a column is malformed";
      for (size_t i = 0; i < t->n_key; i++)
        if (!good_text(t->key[i], 128)) return "type: a key column is malformed";
      return NULL;
    }
    case FRAME_BASE: {
      const Oplog__V1__StreamBase *b = m;
      if (!is_id(&b->origin) || b->seq < 1 || b->hash.len != OPLOG_HASH_BYTES) return "base: malformed";
      return NULL;
    }
    case FRAME_ENTRY: {
      const Oplog__V1__StreamEntry *e = m;
      if (!is_id(&e->origin) || e->prev_hash.len != OPLOG_HASH_BYTES || e->hash.len != OPLOG_HASH_BYTES)
        return "entry: origin, prev_hash or hash has the wrong size";
      if (e->seq < 1 || e->clock < 1 || e->key_id < 0 || (e->format != 1 && e->format != 2))
        return "entry: seq, clock, key_id or format out of range";
      if (e->format == 1 && e->clock != e->seq) return "entry: a format-1 entry's clock is not its seq";
      /* room for every local write to come: clock + 1 never overflows */
      if (e->clock > OPL_CLOCK_MAX) return "entry: clock out of range";
      if (e->aggregate.len < 1 || e->aggregate.len > 256 || memchr(e->aggregate.data, 0, e->aggregate.len) ||
          !opl_utf8_valid(e->aggregate.data, e->aggregate.len))
        return "entry: aggregate is not 1-256 bytes of text";
      if (e->data.len < 1) return "entry: no data";
      meta_reader mr;
      meta_pair p;
      int s = opl_meta_open(&mr, e->metadata.data, e->metadata.len) ? 0 : -1;
      while (s >= 0 && (s = opl_meta_next(&mr, &p)) == 1) {
      }
      if (s < 0) return "entry: malformed metadata";
      return NULL;
    }
    case FRAME_KEY: {
      const Oplog__V1__StreamKey *k = m;
      if (!is_id(&k->origin) || k->id < 1 || k->sealed.len != OPL_SEALED_KEY_BYTES) return "key: malformed";
      return NULL;
    }
    case FRAME_CHECKPOINT: {
      const Oplog__V1__StreamCheckpoint *c = m;
      if (!c->text || !*c->text) return "checkpoint: empty";
      return NULL;
    }
    case FRAME_TRAILER: {
      const Oplog__V1__StreamTrailer *t = m;
      if (t->hash.len != OPLOG_HASH_BYTES || t->signature.len != crypto_sign_BYTES) return "trailer: malformed";
      return NULL;
    }
  }
  return "unknown frame kind";
}

static const ProtobufCMessageDescriptor *descriptor(int kind) {
  switch (kind) {
    case FRAME_HEADER: return &oplog__v1__stream_header__descriptor;
    case FRAME_TYPE: return &oplog__v1__stream_type__descriptor;
    case FRAME_BASE: return &oplog__v1__stream_base__descriptor;
    case FRAME_ENTRY: return &oplog__v1__stream_entry__descriptor;
    case FRAME_KEY: return &oplog__v1__stream_key__descriptor;
    case FRAME_CHECKPOINT: return &oplog__v1__stream_checkpoint__descriptor;
    case FRAME_TRAILER: return &oplog__v1__stream_trailer__descriptor;
  }
  return NULL;
}

int opl_stream_read_frame(oplog_db *db, stream_reader *r, int *kind, void **msg) {
  *msg = NULL;
  uint8_t head[FRAME_HEAD];
  size_t got;
  int rc = read_full(db, r, head, sizeof head, &got);
  if (rc) return rc;
  if (got < sizeof head)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: cut short after %lld frames (no trailer)", (long long)r->frames);
  int k = head[0];
  uint32_t n = get_u32be(head + 1);
  const ProtobufCMessageDescriptor *d = descriptor(k);
  if (!d) return opl_db_error(db, OPLOG_CORRUPT, "stream: frame %lld has unknown kind %d", (long long)r->frames + 1, k);
  /* header first and once, then kinds in order, any number of each, the trailer last */
  if ((r->frames == 0) != (k == FRAME_HEADER) || k < r->last_kind || (k == FRAME_HEADER && r->frames))
    return opl_db_error(db, OPLOG_CORRUPT, "stream: frame %lld (kind %d) is out of order", (long long)r->frames + 1, k);
  if (n > r->max_frame)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: frame %lld claims %lu bytes, more than an entry can take",
                        (long long)r->frames + 1, (unsigned long)n);
  r->frame.n = 0;
  if (opl_buf_reserve(&r->frame, n ? n : 1)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  if ((rc = read_full(db, r, r->frame.p, n, &got))) return rc;
  if (got < n) return opl_db_error(db, OPLOG_CORRUPT, "stream: cut short inside frame %lld", (long long)r->frames + 1);
  r->frame.n = n;
  if (k == FRAME_TRAILER) {
    crypto_generichash_final(&r->hash, r->digest, sizeof r->digest);
  } else {
    crypto_generichash_update(&r->hash, head, sizeof head);
    crypto_generichash_update(&r->hash, r->frame.p, n);
    r->frames++;
    if (k == FRAME_ENTRY) r->entries++;
  }
  r->last_kind = k;
  opl_arena_reset(&r->a);
  ProtobufCAllocator alloc;
  opl_arena_protobuf_allocator(&r->a, &alloc);
  ProtobufCMessage *m = protobuf_c_message_unpack(d, &alloc, n, r->frame.p);
  if (!m) {
    if (r->a.failed) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    return opl_db_error(db, OPLOG_CORRUPT, "stream: frame %lld (kind %d) does not decode", (long long)r->frames, k);
  }
  const char *why = shape_error(k, m);
  if (why) return opl_db_error(db, OPLOG_CORRUPT, "stream: frame %lld: %s", (long long)r->frames, why);
  *kind = k;
  *msg = m;
  return OPLOG_OK;
}

int opl_stream_read_end(oplog_db *db, stream_reader *r, const void *trailer, const uint8_t sender[OPLOG_ORIGIN_BYTES]) {
  const Oplog__V1__StreamTrailer *t = trailer;
  if (t->frames != (uint64_t)r->frames || t->entries != (uint64_t)r->entries)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: the trailer counts %llu frames and %llu entries, the stream has %lld and %lld",
                        (unsigned long long)t->frames, (unsigned long long)t->entries, (long long)r->frames,
                        (long long)r->entries);
  if (sodium_memcmp(t->hash.data, r->digest, OPLOG_HASH_BYTES) != 0)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: altered (its hash does not match the trailer)");
  uint8_t msg[sizeof SIGN_TAG - 1 + OPLOG_HASH_BYTES];
  sign_input(msg, r->digest);
  if (crypto_sign_verify_detached(t->signature.data, msg, sizeof msg, sender) != 0)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: the trailer's signature does not verify with the sender's origin key");
  uint8_t extra;
  size_t got;
  int rc = read_full(db, r, &extra, 1, &got);
  if (rc) return rc;
  if (got) return opl_db_error(db, OPLOG_CORRUPT, "stream: bytes follow the trailer");
  return OPLOG_OK;
}

void opl_stream_reader_free(stream_reader *r) {
  opl_buf_free(&r->frame);
  opl_arena_free(&r->a);
}
