/*
 * lua_oplog.c — the Lua 5.4 binding (module `oplog.core`, wrapped by
 * lua/oplog.lua). It follows liolib.c: one metatable per handle type with
 * a method table as __index, __gc and __close sharing one idempotent close,
 * a check helper that raises `closed`, and no C statics holding Lua state.
 * Shared things (metatables, oplog.null) live in the registry under fixed
 * names, so loading the module twice in one state reuses them.
 *
 * Errors are tables {code=, message=} with a metatable whose __tostring
 * gives "oplog: <code>: <message>"; misuse is invalid_argument naming the
 * argument, in lauxlib's "bad argument #n to 'f' (...)" style.
 *
 * Lifetimes:
 *  - A tx or iterator userdata holds its db userdata in a uservalue, so the
 *    db cannot be collected while they are reachable.
 *  - Closing a db first closes its open iterators (they are linked from the
 *    db); using such an iterator afterwards raises `closed`. An iterator
 *    that reached its end simply keeps returning nil.
 *  - Strings passed to the core point into Lua strings anchored by the
 *    argument tables for the duration of the call (no Lua code runs
 *    in between), so rows are never copied.
 *  - Lua errors must never unwind through the core's C frames: callbacks
 *    from the core (types, stats, keys, verify problems, progress) run
 *    their Lua work under lua_pcall, stop the core with a non-zero return
 *    on error and re-raise once the core has returned. While replay or
 *    verify runs, a progress function may not use (or close) that handle:
 *    invalid_argument.
 *  - Transactions do not nest (one per handle; invalid_argument). fn runs
 *    under lua_pcallk, so it may yield (the transaction stays open, holding
 *    the write lock, until fn ends).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>

#include "lua_oplog.h"
#include "oplog.h"

#define DB_MT "oplog.db"
#define TX_MT "oplog.tx"
#define ITER_MT "oplog.iter"
#define ERROR_MT "oplog.error"
#define NULL_MT "oplog.null"
#define NULL_KEY "oplog.null.value"
#define BOX_MT "oplog.entry_box"

typedef struct liter liter;
typedef struct ltx ltx;

typedef struct ldb {
  oplog_db *db;  /* NULL once closed */
  liter *iters;  /* open iterators, closed before the handle */
  ltx *tx;       /* the running db:transaction, if any */
  int busy;      /* inside replay/verify: a progress function may not reenter */
  /* Reusable buffers for the write path (no per-call allocation). */
  oplog_field *fields;
  size_t cap_fields;
  const char **names;
  size_t cap_names;
  oplog_op *ops;
  size_t cap_ops;
  oplog_meta *meta;
  size_t cap_meta;
} ldb;

struct liter {
  oplog_iter *it; /* NULL once closed */
  ldb *d;
  liter *prev, *next;
  int done; /* reached the end: further calls return nil */
};

struct ltx {
  ldb *d;
  int open;    /* only inside its transaction function */
  int aborted; /* the core rolled back after a failed operation */
  int code;    /* ... with this code; the message is uservalue 2 */
  int64_t last_id; /* last entry written by tx:entry */
};

/* Where a stream goes to or comes from: a path the binding opened, or an
 * open Lua file (liolib's luaL_Stream). */
typedef struct lstream {
  FILE *f;        /* a Lua file, or NULL */
  int fd;         /* a path's descriptor, or -1 */
  int err;        /* errno of the first failed read or write */
  int made;       /* a regular file this export created or truncated */
  const char *name;
} lstream;

/* ------------------------------------------------------------------ errors */

/* Replaces the message on top of the stack with an error table. */
static void to_error_table(lua_State *L, int code) {
  int msg = lua_gettop(L);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, oplog_code_name(code));
  lua_setfield(L, -2, "code");
  lua_pushvalue(L, msg);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, ERROR_MT);
  lua_replace(L, msg);
}

static int raise_msg(lua_State *L, int code) {
  to_error_table(L, code);
  return lua_error(L);
}

static int raise_error(lua_State *L, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return raise_msg(L, code);
}

static int raise_db(lua_State *L, oplog_db *db, int rc) {
  lua_pushstring(L, oplog_errmsg(db));
  return raise_msg(L, rc);
}

static const char *api_name(lua_CFunction f, int *method);

/* luaL_argerror with an invalid_argument error table. The function is
 * named from the binding's own tables, so a method numbers its arguments
 * without self however it was called (db:f(x), pcall(db.f, db, x)). */
static int arg_error(lua_State *L, int arg, const char *fmt, ...) {
  lua_Debug ar;
  const char *extra, *name = NULL;
  int method = 0;
  va_list ap;
  va_start(ap, fmt);
  extra = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  if (lua_getstack(L, 0, &ar)) {
    lua_getinfo(L, "nf", &ar);
    name = api_name(lua_tocfunction(L, -1), &method);
    lua_pop(L, 1);
    if (!name) {
      name = ar.name;
      method = ar.namewhat && strcmp(ar.namewhat, "method") == 0;
    }
  }
  if (method && --arg == 0)
    return raise_error(L, OPLOG_INVALID_ARGUMENT, "calling '%s' on bad self (%s)", name ? name : "?",
                       extra);
  return raise_error(L, OPLOG_INVALID_ARGUMENT, "bad argument #%d to '%s' (%s)", arg,
                     name ? name : "?", extra);
}

static int error_tostring(lua_State *L) {
  const char *code, *msg;
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  code = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  lua_pushfstring(L, "oplog: %s: %s", code ? code : "?", msg ? msg : "?");
  return 1;
}

/* ------------------------------------------------------------------ argument checks */

static void check_type(lua_State *L, int arg, int t) {
  if (lua_type(L, arg) != t)
    arg_error(L, arg, "%s expected, got %s", lua_typename(L, t), luaL_typename(L, arg));
}

static const char *check_string(lua_State *L, int arg, size_t *len) {
  check_type(L, arg, LUA_TSTRING);
  return lua_tolstring(L, arg, len);
}

static lua_Integer check_integer(lua_State *L, int arg) {
  int ok;
  lua_Integer v = lua_tointegerx(L, arg, &ok);
  if (!ok || lua_type(L, arg) != LUA_TNUMBER)
    arg_error(L, arg, "integer expected, got %s",
              lua_type(L, arg) == LUA_TNUMBER ? "float" : luaL_typename(L, arg));
  return v;
}

static int is_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Raises invalid_argument (about argument arg) for any key of the options
 * table at idx that is not in allowed (NULL-terminated). */
static void check_options(lua_State *L, int idx, int arg, const char *const *allowed,
                          const char *field) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k;
    int i;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      arg_error(L, arg, "%s%soption names must be strings, got %s", field ? field : "",
                field ? ": " : "", luaL_typename(L, -1));
    k = lua_tostring(L, -1);
    for (i = 0; allowed[i]; i++)
      if (strcmp(k, allowed[i]) == 0) break;
    if (!allowed[i])
      arg_error(L, arg, "%s%sunknown option '%s'", field ? field : "", field ? ": " : "", k);
  }
}

/* 1 when the optional options table at arg is present (and valid). */
static int opt_table(lua_State *L, int arg, const char *const *allowed) {
  if (lua_isnoneornil(L, arg)) return 0;
  check_type(L, arg, LUA_TTABLE);
  check_options(L, arg, arg, allowed, NULL);
  return 1;
}

/* Pushes t[k] (raw: options are plain tables) and returns its type. */
static int get_field(lua_State *L, int t, const char *k) {
  lua_pushstring(L, k);
  return lua_rawget(L, t);
}

static int field_error(lua_State *L, int arg, const char *k, const char *expected) {
  return arg_error(L, arg, "field '%s': %s expected, got %s", k, expected, luaL_typename(L, -1));
}

/* The string t[k] or NULL when absent; it stays anchored by the table. */
static const char *field_string(lua_State *L, int arg, const char *k, size_t *len) {
  const char *s = NULL;
  int t = get_field(L, arg, k);
  if (t == LUA_TSTRING)
    s = lua_tolstring(L, -1, len);
  else if (t != LUA_TNIL)
    field_error(L, arg, k, "string");
  lua_pop(L, 1);
  return s;
}

static int field_bool(lua_State *L, int arg, const char *k, int dflt) {
  int t = get_field(L, arg, k), v = dflt;
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    field_error(L, arg, k, "boolean");
  lua_pop(L, 1);
  return v;
}

static lua_Integer field_integer(lua_State *L, int arg, const char *k, lua_Integer dflt, int *present) {
  lua_Integer v = dflt;
  int t = get_field(L, arg, k), ok = 0;
  if (present) *present = 0;
  if (t != LUA_TNIL) {
    if (t == LUA_TNUMBER) v = lua_tointegerx(L, -1, &ok);
    if (!ok) field_error(L, arg, k, "integer");
    if (present) *present = 1;
  }
  lua_pop(L, 1);
  return v;
}

/* ------------------------------------------------------------------ null and values */

static void push_null(lua_State *L) { lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); }

static int is_null(lua_State *L, int idx) {
  int r;
  idx = lua_absindex(L, idx);
  push_null(L);
  r = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  return r;
}

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "oplog.null");
  return 1;
}

/* Pushes "what", "what[i]" or "ops[i].what" for error messages. */
static const char *where(lua_State *L, const char *what, int index, int op) {
  if (op && index) return lua_pushfstring(L, "ops[%d].%s[%d]", op, what, index);
  if (op) return lua_pushfstring(L, "ops[%d].%s", op, what);
  if (index) return lua_pushfstring(L, "%s[%d]", what, index);
  return lua_pushstring(L, what);
}

/* 0 when the Lua value cannot be stored. */
static int to_value(lua_State *L, int idx, oplog_value *v) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      v->type = OPLOG_INTEGER;
      v->u.i = (int64_t)lua_tointeger(L, idx);
    } else {
      v->type = OPLOG_REAL;
      v->u.r = (double)lua_tonumber(L, idx);
    }
    return 1;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    v->type = OPLOG_TEXT;
    v->u.b.p = s;
    v->u.b.n = n;
    return 1;
  }
  case LUA_TBOOLEAN:
    v->type = OPLOG_BOOLEAN;
    v->u.i = lua_toboolean(L, idx);
    return 1;
  case LUA_TUSERDATA:
    if (is_null(L, idx)) {
      v->type = OPLOG_NULL;
      return 1;
    }
    break;
  default:
    break;
  }
  return 0;
}

static void push_value(lua_State *L, const oplog_value *v, int nullidx) {
  switch (v->type) {
  case OPLOG_INTEGER: lua_pushinteger(L, (lua_Integer)v->u.i); break;
  case OPLOG_REAL: lua_pushnumber(L, (lua_Number)v->u.r); break;
  case OPLOG_TEXT:
  case OPLOG_BLOB: lua_pushlstring(L, (const char *)v->u.b.p, v->u.b.n); break;
  case OPLOG_BOOLEAN: lua_pushboolean(L, v->u.i != 0); break;
  default: lua_pushvalue(L, nullidx); break;
  }
}

/* ------------------------------------------------------------------ scratch buffers */

/* Grows a buffer owned by the db handle; on failure the old one stays
 * owned and nomem is raised. */
static void *grow(lua_State *L, void *p, size_t *cap, size_t need, size_t size) {
  size_t n;
  void *q;
  if (need <= *cap) return p;
  n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  q = sqlite3_realloc64(p, (sqlite3_uint64)n * size);
  if (!q) raise_error(L, OPLOG_NOMEM, "out of memory");
  *cap = n;
  return q;
}

/* Appends the columns of the row table at idx to d->fields[*nf...]. */
static void build_fields(lua_State *L, ldb *d, int idx, size_t *nf, int arg, const char *what,
                         int index, int op) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    oplog_field *f;
    if (lua_type(L, -2) != LUA_TSTRING) {
      const char *tn = luaL_typename(L, -2); /* before where() pushes */
      arg_error(L, arg, "%s: column names must be strings, got %s", where(L, what, index, op), tn);
    }
    if (*nf >= d->cap_fields)
      d->fields = grow(L, d->fields, &d->cap_fields, *nf + 1, sizeof *d->fields);
    f = &d->fields[(*nf)++];
    f->name = lua_tostring(L, -2);
    if (!to_value(L, -1, &f->value)) {
      const char *tn = luaL_typename(L, -1);
      arg_error(L, arg, "%s: column '%s': %s is not a storable value (use oplog.null for NULL)",
                where(L, what, index, op), f->name, tn);
    }
    lua_pop(L, 1);
  }
}

/* Appends the list of column names at idx (nil: none) to d->names. */
static void build_names(lua_State *L, ldb *d, int idx, size_t *nn, int arg, const char *what,
                        int op) {
  size_t i, n;
  if (lua_isnoneornil(L, idx)) return;
  if (lua_type(L, idx) != LUA_TTABLE) {
    const char *tn = luaL_typename(L, idx);
    arg_error(L, arg, "%s: list of column names expected, got %s", where(L, what, 0, op), tn);
  }
  n = lua_rawlen(L, idx);
  if (*nn + n > d->cap_names) d->names = grow(L, d->names, &d->cap_names, *nn + n, sizeof *d->names);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING) {
      const char *tn = luaL_typename(L, -1);
      arg_error(L, arg, "%s: column name expected, got %s", where(L, what, (int)i, op), tn);
    }
    d->names[(*nn)++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
}

/* A metadata key or value at idx: a string without NUL bytes, which C
 * strings would cut short. */
static const char *meta_string(lua_State *L, int idx, int arg, const char *what, const char *role) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (strlen(s) != n) arg_error(L, arg, "%s: a metadata %s contains a NUL byte", what, role);
  return s;
}

/* Fills d->meta from a metadata table {key = "v" | {"v1", ...} | true}. */
static size_t build_meta(lua_State *L, ldb *d, int idx, int arg, const char *what) {
  size_t n = 0;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING)
      arg_error(L, arg, "%s: keys must be strings, got %s", what, luaL_typename(L, -2));
    k = meta_string(L, -2, arg, what, "key");
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
      if (n >= d->cap_meta) d->meta = grow(L, d->meta, &d->cap_meta, n + 1, sizeof *d->meta);
      d->meta[n].key = k;
      d->meta[n++].value = meta_string(L, -1, arg, what, "value");
      break;
    case LUA_TBOOLEAN:
      if (!lua_toboolean(L, -1)) goto bad;
      if (n >= d->cap_meta) d->meta = grow(L, d->meta, &d->cap_meta, n + 1, sizeof *d->meta);
      d->meta[n].key = k;
      d->meta[n++].value = NULL;
      break;
    case LUA_TTABLE: {
      size_t i, len = lua_rawlen(L, -1);
      if (n + (len ? len : 1) > d->cap_meta)
        d->meta = grow(L, d->meta, &d->cap_meta, n + (len ? len : 1), sizeof *d->meta);
      if (len == 0) { /* an empty list: the key alone, as entries decode it */
        d->meta[n].key = k;
        d->meta[n++].value = NULL;
      }
      for (i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
          arg_error(L, arg, "%s: key '%s': value #%d must be a string, got %s", what, k, (int)i,
                    luaL_typename(L, -1));
        d->meta[n].key = k;
        d->meta[n++].value = meta_string(L, -1, arg, what, "value");
        lua_pop(L, 1);
      }
      break;
    }
    default:
    bad:
      arg_error(L, arg, "%s: key '%s': a string, a list of strings or true expected, got %s", what,
                k, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
  return n;
}

/* ------------------------------------------------------------------ db handle */

static void iter_release(liter *it) {
  if (it->it) {
    oplog_iter_close(it->it);
    it->it = NULL;
  }
  if (it->d) { /* unlink */
    if (it->prev)
      it->prev->next = it->next;
    else if (it->d->iters == it)
      it->d->iters = it->next;
    if (it->next) it->next->prev = it->prev;
    it->prev = it->next = NULL;
  }
}

/* The one close behind db:close, __close and __gc. Idempotent. */
static void db_release(ldb *d) {
  while (d->iters) iter_release(d->iters);
  if (d->tx) {
    d->tx->open = 0;
    d->tx = NULL;
  }
  if (d->db) {
    oplog_close(d->db); /* rolls back any open transaction */
    d->db = NULL;
  }
  sqlite3_free(d->fields);
  sqlite3_free(d->names);
  sqlite3_free(d->ops);
  sqlite3_free(d->meta);
  d->fields = NULL;
  d->names = NULL;
  d->ops = NULL;
  d->meta = NULL;
  d->cap_fields = d->cap_names = d->cap_ops = d->cap_meta = 0;
}

static ldb *to_db(lua_State *L) {
  ldb *d = luaL_testudata(L, 1, DB_MT);
  if (!d) arg_error(L, 1, "oplog.db expected, got %s", luaL_typename(L, 1));
  return d;
}

/* Like liolib's tofile: the handle at 1, open and not reentered. */
static ldb *check_db(lua_State *L) {
  ldb *d = to_db(L);
  if (!d->db) raise_error(L, OPLOG_CLOSED, "attempt to use a closed oplog.db");
  if (d->busy)
    raise_error(L, OPLOG_INVALID_ARGUMENT,
                "oplog.db is busy: a progress function may not use the handle it reports on");
  return d;
}

static int db_close(lua_State *L) {
  ldb *d = to_db(L);
  if (d->busy)
    return raise_error(L, OPLOG_INVALID_ARGUMENT,
                       "oplog.db is busy: a progress function may not close its handle");
  db_release(d);
  return 0;
}

static int db_gc(lua_State *L) {
  ldb *d = luaL_testudata(L, 1, DB_MT);
  if (d) db_release(d);
  return 0;
}

static int db_tostring(lua_State *L) {
  ldb *d = to_db(L);
  if (!d->db) {
    lua_pushliteral(L, "oplog.db (closed)");
  } else {
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "oplog.db (%s)", lua_tostring(L, -1));
  }
  return 1;
}

/* ------------------------------------------------------------------ open, keygen */

static const char *const KEY_OPTS[] = {"key_file", "key", "passphrase", "passphrase_fd", "kdf", "kdf_limit",
                                       "encryption", NULL};
static const char *const OPEN_OPTS[] = {"key_file", "key", "passphrase", "passphrase_fd", "kdf", "kdf_limit", "encryption",
                                        "readonly", "create", "busy_timeout", "sync", "max_entry_bytes", NULL};
static const char *const KDF_OPTS[] = {"ops", "mem", NULL};

/* Reads {ops =, mem =} at field `name` of the options: Argon2id limits
 * (0: the default), mem in bytes. A mem beyond this platform's size_t
 * (32-bit machines) is read as SIZE_MAX, never cut to fewer bytes: as
 * `kdf` the library then refuses it as out of libsodium's range
 * (invalid_argument), as on 64-bit machines; as `kdf_limit` it means no
 * limit, as a larger one does there. */
static void kdf_field(lua_State *L, int arg, const char *name, unsigned long long *ops, size_t *mem) {
  int t = get_field(L, arg, name);
  if (t != LUA_TNIL) {
    int kdf = lua_gettop(L), i;
    lua_Integer lim[2] = {0, 0};
    if (t != LUA_TTABLE) field_error(L, arg, name, "table");
    check_options(L, kdf, arg, KDF_OPTS, name);
    for (i = 0; i < 2; i++) {
      int ok = 1;
      if (get_field(L, kdf, KDF_OPTS[i]) != LUA_TNIL) lim[i] = lua_tointegerx(L, -1, &ok);
      if (!ok || lim[i] < 0)
        arg_error(L, arg, "field '%s': '%s' must be an integer >= 0", name, KDF_OPTS[i]);
      lua_pop(L, 1);
    }
    *ops = (unsigned long long)lim[0];
    *mem = (lua_Unsigned)lim[1] > (lua_Unsigned)SIZE_MAX ? SIZE_MAX : (size_t)lim[1];
  }
  lua_pop(L, 1);
}

static void parse_key_source(lua_State *L, int arg, oplog_key_source *ks) {
  size_t n = 0;
  int choices = 0;
  const char *s;
  memset(ks, 0, sizeof *ks);
  if ((ks->key_file = field_string(L, arg, "key_file", NULL)) != NULL) choices++;
  if ((s = field_string(L, arg, "key", &n)) != NULL) {
    if (n != 32) arg_error(L, arg, "field 'key': 32 bytes expected, got %d", (int)n);
    ks->key = (const unsigned char *)s;
    ks->key_len = n;
    choices++;
  }
  if ((s = field_string(L, arg, "passphrase", &n)) != NULL) {
    if (n == 0) arg_error(L, arg, "field 'passphrase': empty passphrase");
    ks->passphrase = s;
    ks->passphrase_len = n;
    choices++;
  }
  {
    /* read by the core into locked memory: the passphrase never becomes a
     * Lua string, which would stay in Lua's heap after use */
    int present;
    lua_Integer fd = field_integer(L, arg, "passphrase_fd", 0, &present);
    if (present) {
      if (fd < 0 || fd > INT32_MAX) arg_error(L, arg, "field 'passphrase_fd': a file descriptor expected");
      ks->passphrase_from_fd = 1;
      ks->passphrase_fd = (int)fd;
      choices++;
    }
  }
  if (!field_bool(L, arg, "encryption", 1)) {
    ks->no_encryption = 1;
    choices++;
  }
  if (choices > 1)
    arg_error(L, arg, "key_file, key, passphrase, passphrase_fd and encryption = false exclude each other");
  kdf_field(L, arg, "kdf", &ks->kdf_ops, &ks->kdf_mem);
  kdf_field(L, arg, "kdf_limit", &ks->kdf_ops_max, &ks->kdf_mem_max);
}

static int l_open(lua_State *L) {
  const char *path = check_string(L, 1, NULL);
  oplog_open_opts o;
  oplog_db *db = NULL;
  ldb *d;
  int rc;
  memset(&o, 0, sizeof o);
  lua_settop(L, 2);
  if (opt_table(L, 2, OPEN_OPTS)) {
    const char *sync;
    int present;
    lua_Integer ms;
    parse_key_source(L, 2, &o.key);
    o.readonly = field_bool(L, 2, "readonly", 0);
    o.no_create = !field_bool(L, 2, "create", 1);
    ms = field_integer(L, 2, "busy_timeout", 0, &present);
    if (present) {
      if (ms < 0 || ms > INT32_MAX) arg_error(L, 2, "field 'busy_timeout': 0 or more milliseconds expected");
      o.busy_timeout_ms = ms == 0 ? -1 : (int)ms; /* C: 0 is the default, negative no waiting */
    }
    ms = field_integer(L, 2, "max_entry_bytes", 0, &present);
    if (present) {
      if (ms < 1 || (lua_Unsigned)ms > (lua_Unsigned)SIZE_MAX) arg_error(L, 2, "field 'max_entry_bytes': a positive size expected");
      o.max_entry_bytes = (size_t)ms;
    }
    sync = field_string(L, 2, "sync", NULL);
    if (sync) {
      if (strcmp(sync, "full") == 0)
        o.sync = OPLOG_SYNC_FULL;
      else if (strcmp(sync, "normal") == 0)
        o.sync = OPLOG_SYNC_NORMAL;
      else
        arg_error(L, 2, "field 'sync': \"full\" or \"normal\" expected, got \"%s\"", sync);
    }
  }
  /* The userdata exists before the core handle so that no error can leak it. */
  d = lua_newuserdatauv(L, sizeof *d, 1);
  memset(d, 0, sizeof *d);
  luaL_setmetatable(L, DB_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  rc = oplog_open(path, &o, &db);
  d->db = db;
  if (rc != OPLOG_OK) {
    if (!db) return raise_error(L, rc, "cannot open %s", path);
    lua_pushstring(L, oplog_errmsg(db));
    db_release(d);
    return raise_msg(L, rc);
  }
  return 1;
}

static int l_keygen(lua_State *L) {
  const char *path = check_string(L, 1, NULL);
  char err[512];
  int rc;
  err[0] = 0;
  rc = oplog_keygen(path, err, sizeof err);
  if (rc != OPLOG_OK) return raise_error(L, rc, "%s", err[0] ? err : "cannot write key file");
  return 0;
}

/* ------------------------------------------------------------------ catalog */

static const char *const DEFINE_OPTS[] = {"columns", "table", "aggregate", "key", NULL};

static int db_define(lua_State *L) {
  ldb *d = check_db(L);
  oplog_type_spec s;
  oplog_column *cols;
  size_t i, n;
  int t, rc;
  memset(&s, 0, sizeof s);
  s.name = check_string(L, 2, NULL);
  check_type(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  check_options(L, 3, 3, DEFINE_OPTS, NULL);
  s.table = field_string(L, 3, "table", NULL);
  s.aggregate = field_string(L, 3, "aggregate", NULL);
  if (get_field(L, 3, "columns") != LUA_TTABLE) field_error(L, 3, "columns", "list of {name, decl}");
  n = lua_rawlen(L, 4); /* 4: columns */
  if (n == 0) arg_error(L, 3, "field 'columns': at least one column expected");
  cols = lua_newuserdatauv(L, n * sizeof *cols, 0); /* 5: temporary */
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 4, (lua_Integer)i) != LUA_TTABLE || lua_rawgeti(L, -1, 1) != LUA_TSTRING ||
        lua_rawgeti(L, -2, 2) != LUA_TSTRING)
      arg_error(L, 3, "columns[%d]: {name, decl} with two strings expected", (int)i);
    cols[i - 1].name = lua_tostring(L, -2);
    cols[i - 1].decl = lua_tostring(L, -1);
    lua_pop(L, 3);
  }
  s.columns = cols;
  s.ncolumns = n;
  t = get_field(L, 3, "key"); /* 6 */
  if (t == LUA_TSTRING) {
    const char **k = lua_newuserdatauv(L, sizeof *k, 0);
    k[0] = lua_tostring(L, 6);
    s.key = k;
    s.nkey = 1;
  } else if (t == LUA_TTABLE) {
    size_t nk = lua_rawlen(L, 6);
    const char **k = lua_newuserdatauv(L, (nk ? nk : 1) * sizeof *k, 0);
    for (i = 1; i <= nk; i++) {
      if (lua_rawgeti(L, 6, (lua_Integer)i) != LUA_TSTRING)
        arg_error(L, 3, "key[%d]: column name expected, got %s", (int)i, luaL_typename(L, -1));
      k[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
    if (nk == 0) arg_error(L, 3, "field 'key': at least one column expected");
    s.key = k;
    s.nkey = nk;
  } else if (t != LUA_TNIL) {
    field_error(L, 3, "key", "column name or list of column names");
  }
  rc = oplog_define(d->db, &s);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return 0;
}

/* Callbacks from the core run their Lua work through cb_run. */
typedef struct cbctx {
  lua_State *L;
  int target;   /* stack index of the table being filled */
  int progress; /* stack index of the progress function, 0: none */
  int failed;   /* an error value is on top of the stack */
  void *out;    /* what a walk returns besides the table (stats) */
} cbctx;

static int cb_run(cbctx *c, lua_CFunction fill, const void *p1, const void *p2, int64_t i1,
                  int64_t i2) {
  lua_State *L = c->L;
  if (c->failed) return 1;
  lua_pushcfunction(L, fill);
  lua_pushvalue(L, c->target);
  lua_pushlightuserdata(L, (void *)p1);
  lua_pushlightuserdata(L, (void *)p2);
  lua_pushinteger(L, (lua_Integer)i1);
  lua_pushinteger(L, (lua_Integer)i2);
  if (lua_pcall(L, 5, 0, 0) != LUA_OK) {
    c->failed = 1;
    return 1;
  }
  return 0;
}

static int cb_progress(void *ctx, int64_t done, int64_t total) {
  cbctx *c = ctx;
  lua_State *L = c->L;
  if (c->failed) return 1;
  if (!c->progress) return 0;
  lua_pushvalue(L, c->progress);
  lua_pushinteger(L, (lua_Integer)done);
  lua_pushinteger(L, (lua_Integer)total);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    c->failed = 1;
    return 1;
  }
  return 0;
}

/* Before a core call with callbacks: room on the stack for their Lua work,
 * and the progress function (c->progress, from get_progress), if any, as
 * the options' progress and progress_ctx. */
static void set_progress(lua_State *L, cbctx *c, oplog_progress_fn *fn, void **ctx) {
  luaL_checkstack(L, 10, NULL);
  if (c->progress) {
    *fn = cb_progress;
    *ctx = c;
  }
}

/* After a core call with callbacks, raises what failed: a callback's Lua
 * error (on top of the stack), else a failed read or write of the stream
 * s (NULL: none), naming the file, else the core's error rc. */
static void check_call(lua_State *L, ldb *d, const cbctx *c, int rc, const lstream *s) {
  if (c->failed) lua_error(L);
  if (s && s->err) raise_error(L, OPLOG_IO, "%s: %s", s->name, strerror(s->err));
  if (rc != OPLOG_OK) raise_db(L, d->db, rc);
}

/* A core call that runs a progress function brackets it with these: while
 * it runs the handle is busy (check_db and db_close refuse it to that
 * function); busy_end then raises what failed (check_call). */
static void busy_begin(ldb *d) { d->busy = 1; }

static void busy_end(lua_State *L, ldb *d, const cbctx *c, int rc, const lstream *s) {
  d->busy = 0;
  check_call(L, d, c, rc, s);
}

static void set_string_list(lua_State *L, const char *const *v, size_t n, const char *field) {
  size_t i;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  lua_setfield(L, -2, field);
}

static int fill_type(lua_State *L) {
  const oplog_type_spec *s = lua_touserdata(L, 2);
  size_t i;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, s->table ? s->table : s->name);
  lua_setfield(L, -2, "table");
  lua_pushstring(L, s->aggregate ? s->aggregate : (s->table ? s->table : s->name));
  lua_setfield(L, -2, "aggregate");
  set_string_list(L, s->key, s->key ? s->nkey : 0, "key");
  lua_createtable(L, (int)s->ncolumns, 0);
  for (i = 0; i < s->ncolumns; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, s->columns[i].name);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, s->columns[i].decl);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  lua_setfield(L, -2, "columns");
  lua_setfield(L, 1, s->name);
  return 0;
}

static int cb_type(void *ctx, const oplog_type_spec *spec) {
  return cb_run(ctx, fill_type, spec, NULL, 0, 0);
}

/* Pushes a new table filled by one of the core's walks (types, keys,
 * stats' aggregates); out is handed to the walk. */
static int collect(lua_State *L, int (*walk)(oplog_db *db, cbctx *c), void *out) {
  ldb *d = check_db(L);
  cbctx c = {L, 0, 0, 0, out};
  lua_settop(L, 1);
  luaL_checkstack(L, 10, NULL);
  lua_newtable(L);
  c.target = 2;
  check_call(L, d, &c, walk(d->db, &c), NULL);
  return 1;
}

static int walk_types(oplog_db *db, cbctx *c) { return oplog_types(db, cb_type, c); }

static int db_types(lua_State *L) { return collect(L, walk_types, NULL); }

static int db_ticket(lua_State *L) {
  ldb *d = check_db(L);
  const char *agg = check_string(L, 2, NULL);
  int64_t v = 0;
  int rc = oplog_ticket(d->db, agg, &v);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, "version");
  return 1;
}

/* ------------------------------------------------------------------ transactions */

static ltx *check_tx(lua_State *L) {
  ltx *t = luaL_testudata(L, 1, TX_MT);
  if (!t) arg_error(L, 1, "oplog.tx expected, got %s", luaL_typename(L, 1));
  if (!t->open || !t->d->db)
    raise_error(L, OPLOG_CLOSED,
                "attempt to use a closed oplog.tx (it is valid only inside its transaction function)");
  if (t->aborted) {
    lua_getiuservalue(L, 1, 2);
    raise_error(L, t->code, "transaction already rolled back: %s", lua_tostring(L, -1));
  }
  return t;
}

/* Raises the core's error; if the core rolled the transaction back, the
 * tx remembers it so that later calls and the end of fn raise it too. */
static int tx_fail(lua_State *L, ltx *t, int rc) {
  oplog_db *db = t->d->db;
  lua_pushstring(L, oplog_errmsg(db));
  if (!oplog_tx_active(db)) {
    t->aborted = 1;
    t->code = rc;
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  return raise_msg(L, rc);
}

static void tx_apply(lua_State *L, ltx *t, const oplog_op *op) {
  int rc = oplog_tx_apply(t->d->db, op);
  if (rc != OPLOG_OK) tx_fail(L, t, rc);
}

static void init_op(oplog_op *op, const char *type, oplog_op_kind kind, ldb *d, size_t nf) {
  memset(op, 0, sizeof *op);
  op->type = type;
  op->kind = kind;
  op->row.fields = d->fields;
  op->row.nfields = nf;
}

static int tx_create(lua_State *L) {
  ltx *t = check_tx(L);
  const char *type = check_string(L, 2, NULL);
  size_t nf = 0;
  oplog_op op;
  check_type(L, 3, LUA_TTABLE);
  build_fields(L, t->d, 3, &nf, 3, "row", 0, 0);
  init_op(&op, type, OPLOG_OP_CREATE, t->d, nf);
  tx_apply(L, t, &op);
  lua_pushinteger(L, (lua_Integer)oplog_tx_last_rowid(t->d->db));
  return 1;
}

static int tx_delete(lua_State *L) {
  ltx *t = check_tx(L);
  const char *type = check_string(L, 2, NULL);
  size_t nf = 0;
  oplog_op op;
  check_type(L, 3, LUA_TTABLE);
  build_fields(L, t->d, 3, &nf, 3, "row", 0, 0);
  init_op(&op, type, OPLOG_OP_DELETE, t->d, nf);
  tx_apply(L, t, &op);
  return 0;
}

static int tx_update(lua_State *L) {
  ltx *t = check_tx(L);
  ldb *d = t->d;
  const char *type = check_string(L, 2, NULL);
  size_t nf = 0, nn = 0, nmask;
  oplog_op op;
  check_type(L, 3, LUA_TTABLE);
  build_fields(L, d, 3, &nf, 3, "row", 0, 0);
  build_names(L, d, 4, &nn, 4, "mask", 0);
  nmask = nn;
  build_names(L, d, 5, &nn, 5, "nulls", 0);
  init_op(&op, type, OPLOG_OP_UPDATE, d, nf);
  op.mask = d->names;
  op.nmask = nmask;
  op.nulls = d->names ? d->names + nmask : NULL; /* no arithmetic on NULL */
  op.nnulls = nn - nmask;
  tx_apply(L, t, &op);
  return 0;
}

static int tx_items(lua_State *L, oplog_op_kind kind) {
  ltx *t = check_tx(L);
  const char *type = check_string(L, 2, NULL);
  size_t i, n;
  check_type(L, 3, LUA_TTABLE);
  n = lua_rawlen(L, 3);
  lua_settop(L, 3);
  for (i = 1; i <= n; i++) {
    size_t nf = 0;
    oplog_op op;
    if (lua_rawgeti(L, 3, (lua_Integer)i) != LUA_TTABLE)
      arg_error(L, 3, "rows[%d]: table expected, got %s", (int)i, luaL_typename(L, -1));
    build_fields(L, t->d, 4, &nf, 3, "rows", (int)i, 0);
    init_op(&op, type, kind, t->d, nf);
    tx_apply(L, t, &op);
    lua_pop(L, 1);
  }
  return 0;
}

/* tx:entry(metadata): writes the operations queued so far as one entry
 * (redeeming the next ticket version) and goes on in the same SQLite
 * transaction: many entries, one commit. Returns its id, or nil when
 * nothing was queued. */
static int tx_entry(lua_State *L) {
  ltx *t = check_tx(L);
  size_t nmeta = 0;
  int64_t id = 0;
  int rc;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    check_type(L, 2, LUA_TTABLE);
    nmeta = build_meta(L, t->d, 2, 2, "metadata");
  }
  rc = oplog_tx_entry(t->d->db, t->d->meta, nmeta, &id);
  if (rc != OPLOG_OK) return tx_fail(L, t, rc);
  if (id) {
    t->last_id = id;
    lua_pushinteger(L, (lua_Integer)id);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int tx_create_items(lua_State *L) { return tx_items(L, OPLOG_OP_CREATE_ITEMS); }
static int tx_delete_items(lua_State *L) { return tx_items(L, OPLOG_OP_DELETE_ITEMS); }

/* A tx is collected while open only when fn yielded and its coroutine was
 * dropped: roll back so the handle and the write lock are freed. */
static int tx_gc(lua_State *L) {
  ltx *t = luaL_testudata(L, 1, TX_MT);
  if (t && t->open) {
    t->open = 0;
    if (t->d->tx == t) t->d->tx = NULL;
    if (t->d->db && oplog_tx_active(t->d->db)) oplog_tx_rollback(t->d->db);
  }
  return 0;
}

static int tx_tostring(lua_State *L) {
  ltx *t = luaL_checkudata(L, 1, TX_MT);
  lua_pushstring(L, t->open && t->d->db ? "oplog.tx (open)" : "oplog.tx (closed)");
  return 1;
}

/* Builds the commit metadata under lua_pcall (the transaction is open). */
static int meta_protected(lua_State *L) {
  ldb *d = lua_touserdata(L, 1);
  lua_pushinteger(L, (lua_Integer)build_meta(L, d, 2, 4, "field 'metadata'"));
  return 1;
}

static const char *const TX_OPTS[] = {"metadata", NULL};

/*
 * db:transaction(aggregate, fn, opts): there are no nested transactions
 * (one per handle: a nested call raises invalid_argument). opts.metadata is
 * checked first and read again when fn has returned, so fn may fill it in.
 * Returns the id of the last entry written (at the end, or else by
 * tx:entry), nil if none, then what fn returned.
 */
static int tx_finish(lua_State *L, int status, lua_KContext ctx);

static int db_transaction(lua_State *L) {
  ldb *d = check_db(L);
  const char *agg = check_string(L, 2, NULL);
  ltx *t;
  int rc;
  if (!is_callable(L, 3)) arg_error(L, 3, "function expected, got %s", luaL_typename(L, 3));
  lua_settop(L, 4);
  if (opt_table(L, 4, TX_OPTS)) {
    if (get_field(L, 4, "metadata") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TTABLE) field_error(L, 4, "metadata", "table");
      build_meta(L, d, -1, 4, "field 'metadata'");
    }
    lua_pop(L, 1);
  }
  if (d->tx)
    return raise_error(L, OPLOG_INVALID_ARGUMENT,
                       "transaction already running on this oplog.db (transactions do not nest)");
  t = lua_newuserdatauv(L, sizeof *t, 2); /* 5 */
  memset(t, 0, sizeof *t);
  t->d = d;
  luaL_setmetatable(L, TX_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 5, 1);
  rc = oplog_tx_begin(d->db, agg);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  t->open = 1;
  d->tx = t;
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 5);
  /* With a continuation, fn may yield (coroutine schedulers). */
  return tx_finish(L, lua_pcallk(L, 1, LUA_MULTRET, 0, 0, tx_finish), 0);
}

/* The end of db:transaction, after fn returned, raised or (resumed after a
 * yield) finished: the stack holds db, aggregate, fn, opts, tx, results. */
static int tx_finish(lua_State *L, int status, lua_KContext ctx) {
  ldb *d = lua_touserdata(L, 1);
  ltx *t = lua_touserdata(L, 5);
  int nres = lua_gettop(L) - 5, rc;
  int64_t id = 0;
  size_t nmeta = 0;
  (void)ctx;
  t->open = 0;
  if (d->tx == t) d->tx = NULL;
  if (status != LUA_OK && status != LUA_YIELD) {
    if (d->db && oplog_tx_active(d->db)) oplog_tx_rollback(d->db);
    return lua_error(L); /* the original error value */
  }
  if (!d->db) return raise_error(L, OPLOG_CLOSED, "oplog.db closed inside its transaction function");
  if (t->aborted) {
    lua_getiuservalue(L, 5, 2);
    return raise_msg(L, t->code);
  }
  if (!oplog_tx_active(d->db))
    return raise_error(L, OPLOG_INVALID_ARGUMENT,
                       "the transaction was ended inside its function");
  if (!lua_checkstack(L, 8)) {
    oplog_tx_rollback(d->db);
    return raise_error(L, OPLOG_NOMEM, "out of Lua stack");
  }
  if (!lua_isnil(L, 4)) {
    get_field(L, 4, "metadata");
    if (!lua_isnil(L, -1)) {
      lua_pushcfunction(L, meta_protected);
      lua_pushlightuserdata(L, d);
      lua_pushvalue(L, -3);
      if (lua_type(L, -1) != LUA_TTABLE) {
        oplog_tx_rollback(d->db);
        return raise_error(L, OPLOG_INVALID_ARGUMENT, "opts.metadata: table expected, got %s",
                           luaL_typename(L, -1));
      }
      if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        oplog_tx_rollback(d->db);
        return lua_error(L);
      }
      nmeta = (size_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    /* the metadata table stays on the stack: it anchors the strings */
  }
  rc = oplog_tx_commit(d->db, d->meta, nmeta, &id);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  if (!id) id = t->last_id; /* the last entry fn wrote with tx:entry, if any */
  lua_settop(L, 5 + nres);
  if (id)
    lua_pushinteger(L, (lua_Integer)id);
  else
    lua_pushnil(L);
  lua_insert(L, 6);
  return nres + 1;
}

/* ------------------------------------------------------------------ low level */

static int db_begin(lua_State *L) {
  ldb *d = check_db(L);
  int rc = oplog_begin(d->db);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return 0;
}

static int db_commit(lua_State *L) {
  ldb *d = check_db(L);
  int rc = oplog_commit(d->db);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return 0;
}

static int db_rollback(lua_State *L) {
  ldb *d = check_db(L);
  int rc = oplog_rollback(d->db);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return 0;
}

static const char *const WRITE_OPTS[] = {"aggregate", "ticket", "metadata", "ops", NULL};
static const char *const OP_OPTS[] = {"type", "op", "row", "mask", "nulls", NULL};

static int db_write_entry(lua_State *L) {
  ldb *d = check_db(L);
  oplog_entry_write w;
  size_t i, n, nf = 0, nn = 0;
  int t;
  memset(&w, 0, sizeof w);
  check_type(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  check_options(L, 2, 2, WRITE_OPTS, NULL);
  w.aggregate = field_string(L, 2, "aggregate", NULL);
  if (!w.aggregate) arg_error(L, 2, "field 'aggregate': string expected, got nil");
  t = get_field(L, 2, "ticket");
  if (t == LUA_TTABLE) { /* the table db:ticket returned */
    lua_getfield(L, -1, "version");
    lua_replace(L, -2);
  }
  if (!lua_isinteger(L, -1)) field_error(L, 2, "ticket", "integer or ticket table");
  w.ticket = (int64_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  t = get_field(L, 2, "metadata"); /* 3 */
  if (t == LUA_TTABLE)
    w.nmetadata = build_meta(L, d, 3, 2, "field 'metadata'");
  else if (t != LUA_TNIL)
    field_error(L, 2, "metadata", "table");
  w.metadata = d->meta;
  if (get_field(L, 2, "ops") != LUA_TTABLE) field_error(L, 2, "ops", "list of operations"); /* 4 */
  n = lua_rawlen(L, 4);
  if (n == 0) arg_error(L, 2, "field 'ops': at least one operation expected");
  if (n > d->cap_ops) d->ops = grow(L, d->ops, &d->cap_ops, n, sizeof *d->ops);
  /* Buffers may move while they grow: record offsets, then fix pointers. */
  for (i = 0; i < n; i++) {
    oplog_op *op = &d->ops[i];
    size_t f0 = nf, m0, u0;
    int kind, top;
    const char *name;
    memset(op, 0, sizeof *op);
    if (lua_rawgeti(L, 4, (lua_Integer)(i + 1)) != LUA_TTABLE)
      arg_error(L, 2, "ops[%d]: table expected, got %s", (int)(i + 1), luaL_typename(L, -1));
    top = lua_gettop(L);
    check_options(L, top, 2, OP_OPTS, lua_pushfstring(L, "ops[%d]", (int)(i + 1)));
    lua_pop(L, 1);
    if (get_field(L, top, "type") != LUA_TSTRING)
      arg_error(L, 2, "ops[%d].type: string expected, got %s", (int)(i + 1), luaL_typename(L, -1));
    op->type = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (get_field(L, top, "op") != LUA_TSTRING)
      arg_error(L, 2, "ops[%d].op: string expected, got %s", (int)(i + 1), luaL_typename(L, -1));
    name = lua_tostring(L, -1);
    kind = oplog_op_kind_from_name(name);
    if (!kind) arg_error(L, 2, "ops[%d].op: unknown operation '%s'", (int)(i + 1), name);
    op->kind = (oplog_op_kind)kind;
    lua_pop(L, 1);
    if (get_field(L, top, "row") != LUA_TTABLE)
      arg_error(L, 2, "ops[%d].row: table expected, got %s", (int)(i + 1), luaL_typename(L, -1));
    build_fields(L, d, top + 1, &nf, 2, "row", 0, (int)(i + 1));
    lua_pop(L, 1);
    m0 = nn;
    get_field(L, top, "mask");
    build_names(L, d, top + 1, &nn, 2, "mask", (int)(i + 1));
    lua_pop(L, 1);
    u0 = nn;
    get_field(L, top, "nulls");
    build_names(L, d, top + 1, &nn, 2, "nulls", (int)(i + 1));
    lua_pop(L, 1);
    op->row.fields = (const oplog_field *)(uintptr_t)f0;
    op->row.nfields = nf - f0;
    op->mask = (const char *const *)(uintptr_t)m0;
    op->nmask = u0 - m0;
    op->nulls = (const char *const *)(uintptr_t)u0;
    op->nnulls = nn - u0;
    lua_pop(L, 1);
  }
  for (i = 0; i < n; i++) { /* offsets to pointers; the buffers may be NULL when unused */
    oplog_op *op = &d->ops[i];
    op->row.fields = d->fields ? d->fields + (uintptr_t)op->row.fields : NULL;
    op->mask = d->names ? (const char *const *)d->names + (uintptr_t)op->mask : NULL;
    op->nulls = d->names ? (const char *const *)d->names + (uintptr_t)op->nulls : NULL;
  }
  w.ops = d->ops;
  w.nops = n;
  {
    int64_t id = 0;
    int rc = oplog_write_entry(d->db, &w, &id);
    if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
    lua_pushinteger(L, (lua_Integer)id);
  }
  return 1;
}

/* ------------------------------------------------------------------ reading */

static void push_hex(lua_State *L, const unsigned char *p, size_t n);

static void push_entry(lua_State *L, const oplog_entry *e) {
  int nullidx, meta;
  size_t i, j;
  luaL_checkstack(L, 12, NULL);
  push_null(L);
  nullidx = lua_gettop(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)e->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, e->aggregate);
  lua_setfield(L, -2, "aggregate");
  lua_pushinteger(L, (lua_Integer)e->created);
  lua_setfield(L, -2, "created");
  lua_pushinteger(L, (lua_Integer)e->key_id);
  lua_setfield(L, -2, "key_id");
  push_hex(L, e->origin, OPLOG_ORIGIN_BYTES);
  lua_setfield(L, -2, "origin");
  lua_pushinteger(L, (lua_Integer)e->seq);
  lua_setfield(L, -2, "seq");
  lua_pushinteger(L, (lua_Integer)e->clock);
  lua_setfield(L, -2, "clock");
  lua_createtable(L, 0, (int)e->nmetadata);
  meta = lua_gettop(L);
  for (i = 0; i < e->nmetadata; i++) {
    if (lua_getfield(L, meta, e->metadata[i].key) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, meta, e->metadata[i].key);
    }
    if (e->metadata[i].value) {
      lua_pushstring(L, e->metadata[i].value);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
    lua_pop(L, 1);
  }
  lua_setfield(L, -2, "metadata");
  lua_createtable(L, (int)e->nops, 0);
  for (i = 0; i < e->nops; i++) {
    const oplog_op *op = &e->ops[i];
    const char *opname = oplog_op_name(op->kind);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, op->type);
    lua_setfield(L, -2, "type");
    lua_pushstring(L, opname ? opname : "unknown");
    lua_setfield(L, -2, "op");
    lua_createtable(L, 0, (int)op->row.nfields);
    for (j = 0; j < op->row.nfields; j++) {
      push_value(L, &op->row.fields[j].value, nullidx);
      lua_setfield(L, -2, op->row.fields[j].name);
    }
    lua_setfield(L, -2, "row");
    set_string_list(L, op->mask, op->mask ? op->nmask : 0, "mask");
    set_string_list(L, op->nulls, op->nulls ? op->nnulls : 0, "nulls");
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  lua_setfield(L, -2, "ops");
  lua_remove(L, nullidx);
}

static int box_gc(lua_State *L) {
  oplog_entry **box = luaL_checkudata(L, 1, BOX_MT);
  if (*box) {
    oplog_entry_free(*box);
    *box = NULL;
  }
  return 0;
}

static int db_entry(lua_State *L) {
  ldb *d = check_db(L);
  lua_Integer id = check_integer(L, 2);
  oplog_entry **box;
  int rc;
  /* The decoded entry is owned by a box so that an error while building
   * the table cannot leak it. */
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, BOX_MT);
  rc = oplog_entry_get(d->db, (int64_t)id, box);
  if (rc == OPLOG_NOT_FOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  push_entry(L, *box);
  oplog_entry_free(*box);
  *box = NULL;
  return 1;
}

static liter *check_iter(lua_State *L, int idx) {
  liter *it = luaL_testudata(L, idx, ITER_MT);
  if (!it) arg_error(L, idx, "oplog.iter expected, got %s", luaL_typename(L, idx));
  return it;
}

static int iter_next(lua_State *L) {
  liter *it = lua_touserdata(L, lua_upvalueindex(1));
  const oplog_entry *e = NULL;
  int rc;
  if (!it->it) {
    if (it->done) return 0;
    return raise_error(L, OPLOG_CLOSED, "attempt to use a closed oplog.iter");
  }
  rc = oplog_iter_next(it->it, &e);
  if (rc != OPLOG_OK) {
    lua_pushstring(L, oplog_errmsg(it->d->db));
    iter_release(it);
    return raise_msg(L, rc);
  }
  if (!e) {
    iter_release(it);
    it->done = 1;
    return 0;
  }
  push_entry(L, e);
  return 1;
}

static int iter_close(lua_State *L) {
  liter *it = check_iter(L, 1);
  iter_release(it);
  return 0;
}

static int iter_gc(lua_State *L) {
  liter *it = luaL_testudata(L, 1, ITER_MT);
  if (it) iter_release(it);
  return 0;
}

static int iter_tostring(lua_State *L) {
  liter *it = check_iter(L, 1);
  lua_pushstring(L, it->it ? "oplog.iter (open)" : "oplog.iter (closed)");
  return 1;
}

static const char *const FILTER_OPTS[] = {"aggregate", "since", "upto", "metadata",
                                          "limit", "reverse", "order", NULL};

/* Returns the 4 values of a generic for: the iterator function, nil, nil
 * and the iterator object as closing value (a `break` closes it). The
 * function ignores its arguments, so it can also be called directly. */
static int db_entries(lua_State *L) {
  ldb *d = check_db(L);
  oplog_filter f;
  oplog_iter *raw = NULL;
  liter *it;
  int rc;
  memset(&f, 0, sizeof f);
  lua_settop(L, 2);
  if (opt_table(L, 2, FILTER_OPTS)) {
    int t;
    f.aggregate = field_string(L, 2, "aggregate", NULL);
    f.since = (int64_t)field_integer(L, 2, "since", 0, NULL);
    f.upto = (int64_t)field_integer(L, 2, "upto", 0, NULL);
    f.limit = (int64_t)field_integer(L, 2, "limit", 0, NULL);
    if (f.since < 0 || f.upto < 0 || f.limit < 0)
      arg_error(L, 2, "since, upto and limit must not be negative");
    f.reverse = field_bool(L, 2, "reverse", 0);
    {
      const char *order = field_string(L, 2, "order", NULL);
      if (order && strcmp(order, "total") == 0)
        f.order_total = 1;
      else if (order && strcmp(order, "id") != 0)
        arg_error(L, 2, "field 'order': \"id\" or \"total\" expected, got \"%s\"", order);
    }
    t = get_field(L, 2, "metadata"); /* 3, anchors the strings */
    if (t == LUA_TTABLE) {
      f.nmetadata = build_meta(L, d, 3, 2, "field 'metadata'");
      f.metadata = d->meta;
    } else if (t != LUA_TNIL) {
      field_error(L, 2, "metadata", "table");
    }
  }
  it = lua_newuserdatauv(L, sizeof *it, 1);
  memset(it, 0, sizeof *it);
  luaL_setmetatable(L, ITER_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  rc = oplog_entries(d->db, &f, &raw);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  it->it = raw;
  it->d = d;
  it->next = d->iters;
  if (d->iters) d->iters->prev = it;
  d->iters = it;
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, iter_next, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, -4);
  return 4;
}

/* ------------------------------------------------------------------ replay, verify, head */

static const char *const REPLAY_OPTS[] = {"aggregate", "since", "upto", "suffix",
                                          "into", "fresh", "progress", NULL};

static int get_progress(lua_State *L, int arg) {
  if (get_field(L, arg, "progress") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!is_callable(L, -1)) field_error(L, arg, "progress", "function");
  return lua_gettop(L);
}

static int db_replay(lua_State *L) {
  ldb *d = check_db(L);
  oplog_replay_opts o;
  oplog_replay_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 2);
  if (opt_table(L, 2, REPLAY_OPTS)) {
    o.aggregate = field_string(L, 2, "aggregate", NULL);
    o.since = (int64_t)field_integer(L, 2, "since", 0, NULL);
    o.upto = (int64_t)field_integer(L, 2, "upto", 0, NULL);
    o.suffix = field_string(L, 2, "suffix", NULL);
    o.into = field_string(L, 2, "into", NULL);
    o.fresh = field_bool(L, 2, "fresh", 0);
    c.progress = get_progress(L, 2);
  }
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  busy_begin(d);
  rc = oplog_replay(d->db, &o, &r);
  busy_end(L, d, &c, rc, NULL);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)r.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)r.ops);
  lua_setfield(L, -2, "ops");
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char buf[2 * OPLOG_HASH_BYTES];
  size_t i;
  for (i = 0; i < n && i < OPLOG_HASH_BYTES; i++) {
    buf[2 * i] = digits[p[i] >> 4];
    buf[2 * i + 1] = digits[p[i] & 15];
  }
  lua_pushlstring(L, buf, 2 * i);
}

static const char *const VERIFY_OPTS[] = {"replay", "head", "checkpoint", "progress", NULL};

static int fill_problem(lua_State *L) {
  const char *kind = lua_touserdata(L, 2), *detail = lua_touserdata(L, 3);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, lua_tointeger(L, 4));
  lua_setfield(L, -2, "id");
  lua_pushstring(L, kind ? kind : "");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, detail ? detail : "");
  lua_setfield(L, -2, "detail");
  lua_rawseti(L, 1, (lua_Integer)lua_rawlen(L, 1) + 1);
  return 0;
}

static int cb_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  return cb_run(ctx, fill_problem, kind, detail, id, 0);
}

static int db_verify(lua_State *L) {
  ldb *d = check_db(L);
  oplog_verify_opts o;
  oplog_verify_result r;
  unsigned char head[OPLOG_HASH_BYTES];
  cbctx c = {L, 0, 0, 0, NULL};
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 2);
  if (opt_table(L, 2, VERIFY_OPTS)) {
    size_t n, i;
    const char *hex;
    o.replay = field_bool(L, 2, "replay", 0);
    hex = field_string(L, 2, "head", &n);
    if (hex) {
      if (n != 2 * OPLOG_HASH_BYTES)
        arg_error(L, 2, "field 'head': %d hex characters expected, got %d", 2 * OPLOG_HASH_BYTES,
                  (int)n);
      for (i = 0; i < OPLOG_HASH_BYTES; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) arg_error(L, 2, "field 'head': not a hex string");
        head[i] = (unsigned char)(hi << 4 | lo);
      }
      o.head = head;
    }
    o.checkpoint = field_string(L, 2, "checkpoint", &n);
    if (o.checkpoint && strlen(o.checkpoint) != n)
      arg_error(L, 2, "field 'checkpoint': the text contains a NUL byte");
    c.progress = get_progress(L, 2);
  }
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  lua_newtable(L); /* problems */
  c.target = lua_gettop(L);
  busy_begin(d);
  rc = oplog_verify(d->db, &o, cb_problem, &c, &r);
  busy_end(L, d, &c, rc, NULL);
  lua_createtable(L, 0, 3);
  lua_pushboolean(L, r.ok);
  lua_setfield(L, -2, "ok");
  lua_pushinteger(L, (lua_Integer)r.entries);
  lua_setfield(L, -2, "entries");
  lua_pushvalue(L, c.target);
  lua_setfield(L, -2, "problems");
  return 1;
}

static int db_head(lua_State *L) {
  ldb *d = check_db(L);
  unsigned char hash[OPLOG_HASH_BYTES];
  int64_t id = 0;
  int rc = oplog_head(d->db, &id, hash);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)id);
  lua_setfield(L, -2, "id");
  push_hex(L, hash, OPLOG_HASH_BYTES);
  lua_setfield(L, -2, "hash");
  return 1;
}

/* db:origin() -> { id = "<hex>", seq = n, clock = n } */
static int db_origin(lua_State *L) {
  ldb *d = check_db(L);
  oplog_origin_info o;
  int rc = oplog_origin(d->db, &o);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  lua_createtable(L, 0, 3);
  push_hex(L, o.id, OPLOG_ORIGIN_BYTES);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, (lua_Integer)o.seq);
  lua_setfield(L, -2, "seq");
  lua_pushinteger(L, (lua_Integer)o.clock);
  lua_setfield(L, -2, "clock");
  return 1;
}

/* ------------------------------------------------------------------ sync */

static int fill_head(lua_State *L) {
  const oplog_head_info *h = lua_touserdata(L, 2);
  lua_createtable(L, 0, 4);
  push_hex(L, h->origin, OPLOG_ORIGIN_BYTES);
  lua_setfield(L, -2, "origin");
  lua_pushinteger(L, (lua_Integer)h->seq);
  lua_setfield(L, -2, "seq");
  push_hex(L, h->hash, OPLOG_HASH_BYTES);
  lua_setfield(L, -2, "hash");
  lua_pushinteger(L, (lua_Integer)h->clock);
  lua_setfield(L, -2, "clock");
  lua_rawseti(L, 1, (lua_Integer)lua_rawlen(L, 1) + 1);
  return 0;
}

static int cb_head(void *ctx, const oplog_head_info *h) { return cb_run(ctx, fill_head, h, NULL, 0, 0); }

static int walk_heads(oplog_db *db, cbctx *c) { return oplog_heads(db, cb_head, c); }

/* db:heads() -> list of { origin, seq, hash, clock }, ordered by origin id. */
static int db_heads(lua_State *L) { return collect(L, walk_heads, NULL); }

/* Pushes a string the core allocated and frees it. */
static int push_owned(lua_State *L, char *s) {
  lua_pushstring(L, s);
  oplog_free(s);
  return 1;
}

static int db_cursor(lua_State *L) {
  ldb *d = check_db(L);
  char *s = NULL;
  int rc = oplog_cursor(d->db, &s);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return push_owned(L, s);
}

static int db_checkpoint(lua_State *L) {
  ldb *d = check_db(L);
  char *s = NULL;
  int rc = oplog_checkpoint(d->db, &s);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return push_owned(L, s);
}

static int stream_write(void *ctx, const void *p, size_t n) {
  lstream *s = ctx;
  const char *c = p;
  if (s->f) {
    if (fwrite(p, 1, n, s->f) == n) return 0;
    s->err = errno ? errno : EIO;
    return 1;
  }
  while (n > 0) {
    ssize_t w = write(s->fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s->err = w < 0 ? errno : EIO;
      return 1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int stream_read(void *ctx, void *p, size_t n, size_t *got) {
  lstream *s = ctx;
  *got = 0;
  if (s->f) {
    size_t r = fread(p, 1, n, s->f);
    if (r < n && ferror(s->f)) {
      s->err = errno ? errno : EIO;
      return 1;
    }
    *got = r;
    return 0;
  }
  for (;;) {
    ssize_t r = read(s->fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      s->err = errno;
      return 1;
    }
    *got = (size_t)r;
    return 0;
  }
}

/* The stream argument at arg: a path (opened for writing when `out`,
 * created or truncated with mode 0600 as the library's other files) or an
 * open Lua file. Raises before anything is opened; after a successful
 * return nothing may raise until stream_close. */
static void stream_open(lua_State *L, int arg, int out, lstream *s) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  if (lua_type(L, arg) == LUA_TSTRING) {
    size_t n;
    s->name = lua_tolstring(L, arg, &n);
    if (strlen(s->name) != n) arg_error(L, arg, "the path contains a NUL byte");
    if (out) {
      struct stat st;
      s->fd = open(s->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      s->made = s->fd >= 0 && fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
    } else {
      s->fd = open(s->name, O_RDONLY | O_CLOEXEC);
    }
    if (s->fd < 0)
      raise_error(L, errno == ENOENT && !out ? OPLOG_NOT_FOUND : OPLOG_IO, "cannot open %s: %s", s->name,
                  strerror(errno));
    return;
  }
  {
    luaL_Stream *ls = luaL_testudata(L, arg, LUA_FILEHANDLE);
    if (!ls) arg_error(L, arg, "path or open file expected, got %s", luaL_typename(L, arg));
    if (!ls->closef) arg_error(L, arg, "attempt to use a closed file");
    s->f = ls->f;
    s->name = out ? "the output file" : "the input file";
  }
}

/* Flushes (an export), closes what stream_open opened; a failure sets
 * s->err. A failed export removes the regular file it made: no half
 * stream is left behind under the name. */
static void stream_close(lstream *s, int out, int ok) {
  if (s->f) {
    if (out && fflush(s->f) != 0 && !s->err) s->err = errno ? errno : EIO;
    return;
  }
  if (s->fd < 0) return;
  if (out && ok && !s->err && s->made && fsync(s->fd) != 0) s->err = errno;
  if (close(s->fd) != 0 && out && !s->err) s->err = errno;
  s->fd = -1;
  if (out && s->made && (!ok || s->err)) unlink(s->name);
}

static const char *const EXPORT_OPTS[] = {"to", "since", "progress", NULL};

/* db:export(dest, opts) -> { entries, bytes } */
static int db_export(lua_State *L) {
  ldb *d = check_db(L);
  oplog_export_opts o;
  oplog_export_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  lstream s;
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 3);
  if (lua_isnoneornil(L, 2)) arg_error(L, 2, "path or open file expected, got no value");
  if (opt_table(L, 3, EXPORT_OPTS)) {
    size_t n;
    o.to = field_string(L, 3, "to", &n);
    if (o.to && strlen(o.to) != n) arg_error(L, 3, "field 'to': contains a NUL byte");
    o.since = field_string(L, 3, "since", &n);
    if (o.since && strlen(o.since) != n) arg_error(L, 3, "field 'since': contains a NUL byte");
    c.progress = get_progress(L, 3);
  }
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  stream_open(L, 2, 1, &s);
  busy_begin(d);
  rc = oplog_export(d->db, &o, stream_write, &s, &r);
  stream_close(&s, 1, rc == OPLOG_OK && !c.failed);
  busy_end(L, d, &c, rc, &s);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)r.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)r.bytes);
  lua_setfield(L, -2, "bytes");
  return 1;
}

static int push_import_result(lua_State *L, const oplog_import_result *r) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)r->entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)r->skipped);
  lua_setfield(L, -2, "skipped");
  lua_pushinteger(L, (lua_Integer)r->conflicts);
  lua_setfield(L, -2, "conflicts");
  return 1;
}

static const char *const IMPORT_OPTS[] = {"progress", NULL};

/* db:import(src, opts) -> { entries, skipped, conflicts } */
static int db_import(lua_State *L) {
  ldb *d = check_db(L);
  oplog_import_opts o;
  oplog_import_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  lstream s;
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 3);
  if (lua_isnoneornil(L, 2)) arg_error(L, 2, "path or open file expected, got no value");
  if (opt_table(L, 3, IMPORT_OPTS)) c.progress = get_progress(L, 3);
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  stream_open(L, 2, 0, &s);
  busy_begin(d);
  rc = oplog_import(d->db, &o, stream_read, &s, &r);
  stream_close(&s, 0, rc == OPLOG_OK);
  busy_end(L, d, &c, rc, &s);
  return push_import_result(L, &r);
}

static const char *const JOIN_OPTS[] = {"key_file", "key", "passphrase", "passphrase_fd", "kdf", "kdf_limit",
                                        "encryption", "progress", NULL};

/* db:join(other_path, opts) -> as import; opts: the other file's key
 * choice as in oplog.open, and progress. */
static int db_join(lua_State *L) {
  ldb *d = check_db(L);
  const char *other = check_string(L, 2, NULL);
  oplog_open_opts oo;
  oplog_import_opts o;
  oplog_import_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  int rc;
  memset(&oo, 0, sizeof oo);
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 3);
  if (opt_table(L, 3, JOIN_OPTS)) {
    parse_key_source(L, 3, &oo.key);
    c.progress = get_progress(L, 3);
  }
  oo.readonly = 1;
  oo.no_create = 1;
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  busy_begin(d);
  rc = oplog_join(d->db, other, &oo, &o, &r);
  busy_end(L, d, &c, rc, NULL);
  return push_import_result(L, &r);
}

/* db:conflicts(filter) -> iterator over { entry_id, op, kind, detail } in
 * entry id order. It reads a page at a time (since = the last entry id
 * seen), so memory does not grow with the number of conflicts. */
#define CONFLICT_PAGE 64

static int fill_conflict(lua_State *L) {
  const oplog_conflict *c = lua_touserdata(L, 2);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)c->entry_id);
  lua_setfield(L, -2, "entry_id");
  lua_pushinteger(L, (lua_Integer)c->op);
  lua_setfield(L, -2, "op");
  lua_pushstring(L, c->kind ? c->kind : "");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, c->detail ? c->detail : "");
  lua_setfield(L, -2, "detail");
  lua_rawseti(L, 1, (lua_Integer)lua_rawlen(L, 1) + 1);
  return 0;
}

static int cb_conflict(void *ctx, const oplog_conflict *c) { return cb_run(ctx, fill_conflict, c, NULL, 0, 0); }

/* Upvalues: 1 the db, 2 the page, 3 the next index in it, 4 the last
 * entry id read, 5 how many more may be read (-1: no limit), 6 done. */
static int conflicts_next(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)), left;
  ldb *d;
  oplog_filter f;
  cbctx c = {L, 0, 0, 0, NULL};
  int rc;
  lua_settop(L, 0);
  if (lua_rawgeti(L, lua_upvalueindex(2), i) != LUA_TNIL) {
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(3));
    return 1;
  }
  left = lua_tointeger(L, lua_upvalueindex(5));
  if (lua_toboolean(L, lua_upvalueindex(6)) || left == 0) return 0;
  d = lua_touserdata(L, lua_upvalueindex(1));
  if (!d->db) return raise_error(L, OPLOG_CLOSED, "attempt to use a closed oplog.db");
  if (d->busy)
    return raise_error(L, OPLOG_INVALID_ARGUMENT,
                       "oplog.db is busy: a progress function may not use the handle it reports on");
  memset(&f, 0, sizeof f);
  f.since = (int64_t)lua_tointeger(L, lua_upvalueindex(4));
  f.limit = left < 0 || left > CONFLICT_PAGE ? CONFLICT_PAGE : (int64_t)left;
  luaL_checkstack(L, 10, NULL);
  lua_settop(L, 0);
  lua_newtable(L);
  c.target = 1;
  rc = oplog_conflicts(d->db, &f, cb_conflict, &c);
  check_call(L, d, &c, rc, NULL);
  {
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    if (n < f.limit) {
      lua_pushboolean(L, 1);
      lua_replace(L, lua_upvalueindex(6));
    }
    if (left > 0) {
      lua_pushinteger(L, left - n);
      lua_replace(L, lua_upvalueindex(5));
    }
    if (n == 0) return 0;
    lua_rawgeti(L, 1, n);
    lua_getfield(L, -1, "entry_id");
    lua_replace(L, lua_upvalueindex(4));
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_replace(L, lua_upvalueindex(2));
    lua_pushinteger(L, 2);
    lua_replace(L, lua_upvalueindex(3));
    lua_rawgeti(L, 1, 1);
    return 1;
  }
}

static const char *const CONFLICT_OPTS[] = {"since", "limit", NULL};

static int db_conflicts(lua_State *L) {
  lua_Integer since = 0, limit = 0;
  check_db(L);
  lua_settop(L, 2);
  if (opt_table(L, 2, CONFLICT_OPTS)) {
    since = field_integer(L, 2, "since", 0, NULL);
    limit = field_integer(L, 2, "limit", 0, NULL);
    if (since < 0 || limit < 0) arg_error(L, 2, "since and limit must not be negative");
  }
  lua_pushvalue(L, 1);
  lua_newtable(L);
  lua_pushinteger(L, 1);
  lua_pushinteger(L, since);
  lua_pushinteger(L, limit ? limit : -1);
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, conflicts_next, 6);
  return 1;
}

/* ------------------------------------------------------------------ stats, keys */

static int fill_aggregate(lua_State *L) {
  const char *name = lua_touserdata(L, 2);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, lua_tointeger(L, 4));
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, lua_tointeger(L, 5));
  lua_setfield(L, -2, "ticket");
  lua_setfield(L, 1, name);
  return 0;
}

static int cb_aggregate(void *ctx, const char *name, int64_t entries, int64_t ticket) {
  return cb_run(ctx, fill_aggregate, name, NULL, entries, ticket);
}

static int walk_stats(oplog_db *db, cbctx *c) { return oplog_get_stats(db, c->out, cb_aggregate, c); }

static int db_stats(lua_State *L) {
  oplog_stats s;
  memset(&s, 0, sizeof s);
  collect(L, walk_stats, &s); /* the aggregates table, at index 2 */
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)s.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)s.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)s.keys);
  lua_setfield(L, -2, "keys");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "aggregates");
  return 1;
}

static int fill_key(lua_State *L) {
  const char *state = lua_touserdata(L, 2);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, lua_tointeger(L, 4));
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, lua_tointeger(L, 5));
  lua_setfield(L, -2, "created");
  lua_pushstring(L, state ? state : "");
  lua_setfield(L, -2, "state");
  lua_rawseti(L, 1, (lua_Integer)lua_rawlen(L, 1) + 1);
  return 0;
}

static int cb_key(void *ctx, int64_t id, int64_t created, const char *state) {
  return cb_run(ctx, fill_key, state, NULL, id, created);
}

static int walk_keys(oplog_db *db, cbctx *c) { return oplog_keys(db, cb_key, c); }

static int db_keys(lua_State *L) { return collect(L, walk_keys, NULL); }

static int db_rotate_key(lua_State *L) {
  ldb *d = check_db(L);
  int64_t id = 0;
  int rc = oplog_rotate_key(d->db, &id);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int db_rekey(lua_State *L) {
  ldb *d = check_db(L);
  oplog_key_source ks;
  int rc;
  check_type(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  check_options(L, 2, 2, KEY_OPTS, NULL);
  parse_key_source(L, 2, &ks);
  rc = oplog_rekey(d->db, &ks);
  if (rc != OPLOG_OK) return raise_db(L, d->db, rc);
  return 0;
}

/* ------------------------------------------------------------------ fleet (PostgreSQL) */

static const char *const SHIP_OPTS[] = {"postgres", "schema", "apply", "batch", "progress", NULL};

/* db:ship{ postgres = conninfo, schema =, apply =, batch =, progress = }
 * -> { entries, skipped, batches, checkpoints, applied, conflicts } */
static int db_ship(lua_State *L) {
  ldb *d = check_db(L);
  oplog_ship_opts o;
  oplog_ship_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 2);
  check_type(L, 2, LUA_TTABLE);
  check_options(L, 2, 2, SHIP_OPTS, NULL);
  o.conninfo = field_string(L, 2, "postgres", NULL);
  if (!o.conninfo) arg_error(L, 2, "field 'postgres': a connection string expected, got nil");
  o.schema = field_string(L, 2, "schema", NULL);
  o.apply = field_bool(L, 2, "apply", 0);
  o.batch = (int64_t)field_integer(L, 2, "batch", 0, NULL);
  if (o.batch < 0) arg_error(L, 2, "field 'batch': a positive integer expected");
  c.progress = get_progress(L, 2);
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  busy_begin(d);
  rc = oplog_ship(d->db, &o, &r);
  busy_end(L, d, &c, rc, NULL);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)r.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)r.skipped);
  lua_setfield(L, -2, "skipped");
  lua_pushinteger(L, (lua_Integer)r.batches);
  lua_setfield(L, -2, "batches");
  lua_pushinteger(L, (lua_Integer)r.checkpoints);
  lua_setfield(L, -2, "checkpoints");
  lua_pushinteger(L, (lua_Integer)r.applied);
  lua_setfield(L, -2, "applied");
  lua_pushinteger(L, (lua_Integer)r.conflicts);
  lua_setfield(L, -2, "conflicts");
  return 1;
}

static const char *const PG_VERIFY_OPTS[] = {"postgres", "schema", "origin", "progress", NULL};

/* oplog.verify_postgres{ postgres = conninfo, schema =, origin =, progress = }
 * -> { ok, entries, problems = { {id = seq, kind, detail} } } */
static int l_verify_postgres(lua_State *L) {
  oplog_pg_verify_opts o;
  oplog_verify_result r;
  cbctx c = {L, 0, 0, 0, NULL};
  char err[512];
  int rc;
  memset(&o, 0, sizeof o);
  memset(&r, 0, sizeof r);
  lua_settop(L, 1);
  check_type(L, 1, LUA_TTABLE);
  check_options(L, 1, 1, PG_VERIFY_OPTS, NULL);
  o.conninfo = field_string(L, 1, "postgres", NULL);
  if (!o.conninfo) arg_error(L, 1, "field 'postgres': a connection string expected, got nil");
  o.schema = field_string(L, 1, "schema", NULL);
  o.origin = field_string(L, 1, "origin", NULL);
  c.progress = get_progress(L, 1);
  set_progress(L, &c, &o.progress, &o.progress_ctx);
  lua_newtable(L); /* problems */
  c.target = lua_gettop(L);
  rc = oplog_verify_postgres(&o, cb_problem, &c, &r, err, sizeof err);
  if (c.failed) return lua_error(L);
  if (rc != OPLOG_OK) return raise_error(L, rc, "%s", err);
  lua_createtable(L, 0, 3);
  lua_pushboolean(L, r.ok);
  lua_setfield(L, -2, "ok");
  lua_pushinteger(L, (lua_Integer)r.entries);
  lua_setfield(L, -2, "entries");
  lua_pushvalue(L, c.target);
  lua_setfield(L, -2, "problems");
  return 1;
}

/* oplog.have_postgres() -> true when built with PostgreSQL support */
static int l_have_postgres(lua_State *L) {
  lua_pushboolean(L, oplog_have_postgres());
  return 1;
}

/* ------------------------------------------------------------------ registration */

static const luaL_Reg db_methods[] = {
    {"close", db_close},
    {"define", db_define},
    {"types", db_types},
    {"ticket", db_ticket},
    {"transaction", db_transaction},
    {"begin", db_begin},
    {"commit", db_commit},
    {"rollback", db_rollback},
    {"write_entry", db_write_entry},
    {"entries", db_entries},
    {"entry", db_entry},
    {"replay", db_replay},
    {"verify", db_verify},
    {"head", db_head},
    {"origin", db_origin},
    {"heads", db_heads},
    {"cursor", db_cursor},
    {"export", db_export},
    {"import", db_import},
    {"join", db_join},
    {"checkpoint", db_checkpoint},
    {"conflicts", db_conflicts},
    {"ship", db_ship},
    {"stats", db_stats},
    {"keys", db_keys},
    {"rotate_key", db_rotate_key},
    {"rekey", db_rekey},
    {NULL, NULL}};

static const luaL_Reg db_meta[] = {
    {"__index", NULL}, /* set to the method table */
    {"__gc", db_gc},
    {"__close", db_close},
    {"__tostring", db_tostring},
    {NULL, NULL}};

static const luaL_Reg tx_methods[] = {
    {"create", tx_create},
    {"update", tx_update},
    {"delete", tx_delete},
    {"create_items", tx_create_items},
    {"delete_items", tx_delete_items},
    {"entry", tx_entry},
    {NULL, NULL}};

static const luaL_Reg tx_meta[] = {
    {"__index", NULL}, {"__gc", tx_gc}, {"__tostring", tx_tostring}, {NULL, NULL}};

static const luaL_Reg iter_methods[] = {{"close", iter_close}, {NULL, NULL}};

static const luaL_Reg iter_meta[] = {
    {"__index", NULL},
    {"__gc", iter_gc},
    {"__close", iter_gc},
    {"__tostring", iter_tostring},
    {NULL, NULL}};

/* Creates a metatable once per state; a second load finds and keeps it. */
static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  if (luaL_newmetatable(L, name)) {
    luaL_setfuncs(L, meta, 0);
    if (methods) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}

/* oplog.is_error(v): true when v is an error value raised by oplog. */
static int l_is_error(lua_State *L) {
  int r = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ERROR_MT);
    r = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, r);
  return 1;
}

static const luaL_Reg module_funcs[] = {
    {"open", l_open}, {"keygen", l_keygen}, {"is_error", l_is_error},
    {"verify_postgres", l_verify_postgres}, {"have_postgres", l_have_postgres}, {NULL, NULL}};

/* The API name of a C function of the binding; *method: called with self. */
static const char *api_name(lua_CFunction f, int *method) {
  const luaL_Reg *const tables[] = {db_methods, tx_methods, iter_methods, module_funcs};
  size_t t;
  int i;
  if (!f) return NULL;
  for (t = 0; t < sizeof tables / sizeof *tables; t++)
    for (i = 0; tables[t][i].name; i++)
      if (tables[t][i].func == f) {
        *method = tables[t] != module_funcs;
        return tables[t][i].name;
      }
  return NULL;
}

int luaopen_oplog_core(lua_State *L) {
  static const luaL_Reg error_meta[] = {{"__tostring", error_tostring}, {NULL, NULL}};
  static const luaL_Reg null_meta[] = {{"__tostring", null_tostring}, {NULL, NULL}};
  static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {NULL, NULL}};
  luaL_checkversion(L);
  new_meta(L, DB_MT, db_meta, db_methods);
  new_meta(L, TX_MT, tx_meta, tx_methods);
  new_meta(L, ITER_MT, iter_meta, iter_methods);
  new_meta(L, ERROR_MT, error_meta, NULL);
  new_meta(L, BOX_MT, box_meta, NULL);
  new_meta(L, NULL_MT, null_meta, NULL);
  if (lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0); /* unique, immutable, one per state */
    luaL_setmetatable(L, NULL_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, NULL_KEY);
  }
  luaL_newlib(L, module_funcs);
  lua_insert(L, -2);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, OPLOG_VERSION);
  lua_setfield(L, -2, "VERSION");
  return 1;
}
