/* queue.c — the operations of one entry, encoded (Boundary's Queue): each
 * operation is packed as an oplog.v1.AnyOperation holding an oplog.v1.Row,
 * and appended to a buffer that is, byte for byte, an oplog.v1.EntryData.
 * Also the reverse: decoding EntryData back into operations. */
#include <string.h>

#include "internal.h"
#include "oplog.pb-c.h"

void opl_queue_reset(queue *q) {
  q->data.n = 0;
  q->nops = 0;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

int opl_queue_add(oplog_db *db, queue *q, const type_def *t, const oplog_op *op, const int *cols) {
  size_t nf = op->row.nfields;
  Oplog__V1__Field fields[OPLOG_MAX_COLUMNS];
  Oplog__V1__Value values[OPLOG_MAX_COLUMNS];
  Oplog__V1__Field *fptr[OPLOG_MAX_COLUMNS];
  /* protobuf-c packs strings by strlen: texts get NUL-terminated copies in
   * q->texts, reserved once so that pointers into it stay valid */
  size_t text_bytes = 0;
  for (size_t i = 0; i < nf; i++)
    if (opl_value_stored_type(t, cols[i], &op->row.fields[i].value) == OPLOG_TEXT)
      text_bytes += op->row.fields[i].value.u.b.n + 1;
  q->texts.n = 0;
  if (opl_buf_reserve(&q->texts, text_bytes)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int rc = OPLOG_OK;
  for (size_t i = 0; i < nf; i++) {
    const oplog_field *f = &op->row.fields[i];
    oplog__v1__field__init(&fields[i]);
    oplog__v1__value__init(&values[i]);
    fields[i].name = (char *)f->name;
    fields[i].value = &values[i];
    fptr[i] = &fields[i];
    Oplog__V1__Value *v = &values[i];
    switch (opl_value_stored_type(t, cols[i], &f->value)) {
    case OPLOG_NULL:
      v->kind_case = OPLOG__V1__VALUE__KIND_NULL_VALUE;
      v->null_value = 1;
      break;
    case OPLOG_INTEGER:
      v->kind_case = OPLOG__V1__VALUE__KIND_INTEGER_VALUE;
      v->integer_value = f->value.u.i;
      break;
    case OPLOG_REAL:
      v->kind_case = OPLOG__V1__VALUE__KIND_REAL_VALUE;
      v->real_value = f->value.u.r;
      break;
    case OPLOG_BOOLEAN:
      v->kind_case = OPLOG__V1__VALUE__KIND_BOOLEAN_VALUE;
      v->boolean_value = f->value.u.i != 0;
      break;
    case OPLOG_TEXT: {
      size_t n = f->value.u.b.n;
      if (n && memchr(f->value.u.b.p, 0, n)) {
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "text of %s contains a NUL byte: use a BLOB column", f->name);
      }
      char *s = (char *)q->texts.p + q->texts.n;
      if (n) memcpy(s, f->value.u.b.p, n);
      s[n] = 0;
      q->texts.n += n + 1;
      v->kind_case = OPLOG__V1__VALUE__KIND_TEXT_VALUE;
      v->text_value = s;
      break;
    }
    case OPLOG_BLOB:
      v->kind_case = OPLOG__V1__VALUE__KIND_BLOB_VALUE;
      v->blob_value.data = (uint8_t *)f->value.u.b.p;
      v->blob_value.len = f->value.u.b.n;
      break;
    }
  }
  Oplog__V1__Row row = OPLOG__V1__ROW__INIT;
  row.n_fields = nf;
  row.fields = fptr;
  Oplog__V1__FieldMask mask = OPLOG__V1__FIELD_MASK__INIT, nulls = OPLOG__V1__FIELD_MASK__INIT;
  Oplog__V1__AnyOperation any = OPLOG__V1__ANY_OPERATION__INIT;
  any.type_name = t->name;
  any.operation_type = (Oplog__V1__OpType)op->kind;
  if (op->nmask) {
    mask.n_paths = op->nmask;
    mask.paths = (char **)op->mask;
    any.field_mask = &mask;
  }
  if (op->nnulls) {
    nulls.n_paths = op->nnulls;
    nulls.paths = (char **)op->nulls;
    any.null_mask = &nulls;
  }
  size_t rowlen = oplog__v1__row__get_packed_size(&row);
  q->row.n = 0;
  if (opl_buf_reserve(&q->row, rowlen)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  uint8_t *rowbuf = q->row.p;
  oplog__v1__row__pack(&row, rowbuf);
  any.value.data = rowbuf;
  any.value.len = rowlen;
  size_t anylen = oplog__v1__any_operation__get_packed_size(&any);
  if (opl_buf_reserve(&q->data, 11 + anylen)) {
    rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
  } else {
    uint8_t *p = q->data.p + q->data.n;
    p[0] = 0x0a; /* EntryData.operations: field 1, length-delimited */
    size_t h = 1 + put_varint(p + 1, anylen);
    oplog__v1__any_operation__pack(&any, p + h);
    q->data.n += h + anylen;
    q->nops++;
  }
  return rc;
}

static int decode_paths(arena *a, const Oplog__V1__FieldMask *m, const char *const **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!m || !m->n_paths) return OPLOG_OK;
  const char **p = opl_arena_alloc(a, m->n_paths * sizeof *p);
  if (!p) return OPLOG_NOMEM;
  for (size_t i = 0; i < m->n_paths; i++) p[i] = m->paths[i];
  *out = p;
  *n = m->n_paths;
  return OPLOG_OK;
}

int opl_entry_decode(oplog_db *db, arena *a, const uint8_t *data, size_t n, const oplog_op **out,
                 size_t *nout) {
  return opl_entry_data_decode(db, a, data, n, 1, out, nout);
}

int opl_entry_data_decode(oplog_db *db, arena *a, const uint8_t *data, size_t n, int check_types,
                          const oplog_op **out, size_t *nout) {
  ProtobufCAllocator alloc;
  opl_arena_protobuf_allocator(a, &alloc);
  *out = NULL;
  *nout = 0;
  Oplog__V1__EntryData *ed = oplog__v1__entry_data__unpack(&alloc, n, data);
  if (!ed) {
    if (a->failed) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    return opl_db_error(db, OPLOG_CORRUPT, "entry data is not a valid oplog.v1.EntryData");
  }
  oplog_op *ops = opl_arena_alloc(a, (ed->n_operations ? ed->n_operations : 1) * sizeof *ops);
  if (!ops) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  for (size_t i = 0; i < ed->n_operations; i++) {
    const Oplog__V1__AnyOperation *any = ed->operations[i];
    oplog_op *op = &ops[i];
    memset(op, 0, sizeof *op);
    const type_def *t;
    int rc = check_types ? opl_catalog_find(db, any->type_name, &t) : OPLOG_OK;
    if (rc) return rc;
    if (check_types && !t)
      return opl_db_error(db, OPLOG_NOT_FOUND, "operation %llu is of type '%s', which is not in the catalog",
                      (unsigned long long)i + 1, any->type_name);
    op->type = any->type_name;
    op->kind = (oplog_op_kind)any->operation_type;
    if (!oplog_op_name(op->kind))
      return opl_db_error(db, OPLOG_CORRUPT, "operation %llu has unknown type %d", (unsigned long long)i + 1, (int)any->operation_type);
    if (decode_paths(a, any->field_mask, &op->mask, &op->nmask) ||
        decode_paths(a, any->null_mask, &op->nulls, &op->nnulls))
      return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    Oplog__V1__Row *row = oplog__v1__row__unpack(&alloc, any->value.len, any->value.data);
    if (!row) {
      if (a->failed) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
      return opl_db_error(db, OPLOG_CORRUPT, "operation %llu holds no valid oplog.v1.Row", (unsigned long long)i + 1);
    }
    oplog_field *f = opl_arena_alloc(a, (row->n_fields ? row->n_fields : 1) * sizeof *f);
    if (!f) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    for (size_t k = 0; k < row->n_fields; k++) {
      const Oplog__V1__Field *pf = row->fields[k];
      oplog_value *v = &f[k].value;
      f[k].name = pf->name;
      if (!pf->value) return opl_db_error(db, OPLOG_CORRUPT, "field %s has no value", pf->name);
      switch (pf->value->kind_case) {
      case OPLOG__V1__VALUE__KIND_NULL_VALUE: v->type = OPLOG_NULL; break;
      case OPLOG__V1__VALUE__KIND_INTEGER_VALUE:
        v->type = OPLOG_INTEGER;
        v->u.i = pf->value->integer_value;
        break;
      case OPLOG__V1__VALUE__KIND_REAL_VALUE:
        v->type = OPLOG_REAL;
        v->u.r = pf->value->real_value;
        break;
      case OPLOG__V1__VALUE__KIND_BOOLEAN_VALUE:
        v->type = OPLOG_BOOLEAN;
        v->u.i = pf->value->boolean_value != 0;
        break;
      case OPLOG__V1__VALUE__KIND_TEXT_VALUE:
        v->type = OPLOG_TEXT;
        v->u.b.p = pf->value->text_value;
        v->u.b.n = strlen(pf->value->text_value);
        if (!opl_utf8_valid(v->u.b.p, v->u.b.n))
          return opl_db_error(db, OPLOG_CORRUPT, "field %s holds text that is not UTF-8", pf->name);
        break;
      case OPLOG__V1__VALUE__KIND_BLOB_VALUE:
        v->type = OPLOG_BLOB;
        v->u.b.p = pf->value->blob_value.data;
        v->u.b.n = pf->value->blob_value.len;
        break;
      default: return opl_db_error(db, OPLOG_CORRUPT, "field %s has no value", pf->name);
      }
    }
    op->row.fields = f;
    op->row.nfields = row->n_fields;
  }
  *out = ops;
  *nout = ed->n_operations;
  return OPLOG_OK;
}
