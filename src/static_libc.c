/*
 * static_libc.c — only in the static `oplog` command (OPLOG_STATIC).
 *
 * glibc's libc.a is linked member by member, a member whole when anything
 * refers to one of its symbols. The definitions below take the place of a
 * few entry points whose members bring in far more than the command uses
 * (s390x 180 KiB in all, arm64 140, armhf 90; README, "Edge targets").
 * Should libc.a (or libgcc_eh.a) need one of those members for something
 * else, the link fails with "multiple definition" instead of silently
 * doing without; cmake/static-check-map.cmake checks after every link that
 * nothing but tzset calls sscanf (section 5), which tests/cross/static_libc.c
 * compares with glibc's.
 */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef OPLOG_STATIC_LIBC_TEST
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * 1. Shared libraries. A static program cannot use them properly: a Lua C
 *    module needs the Lua API, which a static binary does not export
 *    (Debian's, lfs say, failed with "undefined symbol"; one linked with
 *    liblua5.4.so brought a second Lua and a second libc into the
 *    process), and SQLite's extension loading is refused by
 *    static_sqlite.c; the README says the static command loads Lua modules
 *    written in Lua only. glibc's static dlopen (dl-open, dl-deps,
 *    dl-close, dl-version, dlerror...) and what only it needs (search
 *    paths, relocation of loaded objects) stay out. Loading fails at once,
 *    with a message that says why.
 */
static char dl_message[512];
static int dl_failed;

static void *dl_fail(const char *what) {
  snprintf(dl_message, sizeof dl_message,
           "%s: shared libraries cannot be loaded by the static oplog command (Lua modules "
           "written in Lua can)",
           what ? what : "(null)");
  dl_failed = 1;
  return NULL;
}

void *dlopen(const char *file, int mode) {
  (void)mode;
  return dl_fail(file);
}

void *dlsym(void *handle, const char *name) {
  (void)handle;
  return dl_fail(name);
}

int dlclose(void *handle) {
  (void)handle;
  dl_fail("dlclose");
  return -1;
}

/* As dlerror(3): the last error, once; NULL when there was none since. */
char *dlerror(void) {
  if (!dl_failed) return NULL;
  dl_failed = 0;
  return dl_message;
}

/* glibc's own dlopen user in the command: iconv's loadable converters
 * (gconv modules, for the character sets not built in: the built-in ones
 * are ASCII and the Unicode encodings), wanted by iconv() and by wide
 * characters in a locale of another character set, neither of which the
 * command uses. Not found, as when the module is not installed. */
struct __gconv_loaded_object;
struct __gconv_loaded_object *__gconv_find_shlib(const char *name);
void __gconv_release_shlib(struct __gconv_loaded_object *handle);

struct __gconv_loaded_object *__gconv_find_shlib(const char *name) {
  (void)name;
  return NULL;
}

void __gconv_release_shlib(struct __gconv_loaded_object *handle) { (void)handle; }

/* The start-up code of a static program sets up dlopen's search path
 * (LD_LIBRARY_PATH): there is no dlopen to use it. */
void _dl_init_paths(const char *llp, const char *source, const char *hwcaps_prepend,
                    const char *hwcaps_mask);

void _dl_init_paths(const char *llp, const char *source, const char *hwcaps_prepend,
                    const char *hwcaps_mask) {
  (void)llp, (void)source, (void)hwcaps_prepend, (void)hwcaps_mask;
}

/*
 * 2. RELRO. The start-up code makes the program's RELRO segment (GOT,
 *    .data.rel.ro, init/fini arrays) read-only with _dl_protect_relro,
 *    whose member is the relocation code of loaded objects (dl-reloc:
 *    about 15 KiB). This does the same for the one object there is, the
 *    program, from its program headers (tests/cross/static.lua checks that
 *    the segment is read-only).
 */
struct link_map;
void _dl_protect_relro(struct link_map *map);

void _dl_protect_relro(struct link_map *map) {
  const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
  size_t n = getauxval(AT_PHNUM);
  uintptr_t page = (uintptr_t)getpagesize(), bias = 0;
  (void)map;
  /* A static PIE is loaded at an offset: its PT_PHDR says where. */
  for (size_t i = 0; i < n; i++)
    if (ph[i].p_type == PT_PHDR) bias = (uintptr_t)ph - ph[i].p_vaddr;
  for (size_t i = 0; i < n; i++) {
    if (ph[i].p_type != PT_GNU_RELRO) continue;
    uintptr_t start = (bias + ph[i].p_vaddr) & ~(page - 1);
    uintptr_t end = (bias + ph[i].p_vaddr + ph[i].p_memsz) & ~(page - 1);
    if (start != end && mprotect((void *)start, end - start, PROT_READ) != 0) {
      static const char msg[] =
          "oplog: cannot apply additional memory protection after relocation\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(127);
    }
  }
}

/*
 * 3. Unwinding. glibc's stdio functions carry cleanup handlers (for thread
 *    cancellation) that name libgcc's unwinder; nothing in the command
 *    unwinds (no threads are cancelled, Lua's errors are longjmp, and the
 *    .eh_frame tables are not linked: cmake/static-no-eh-frame.ld), so the
 *    handlers never run and the unwinder (about 20 KiB) stays out. On
 *    32-bit ARM the unwinder is linked anyway (.ARM.exidx), so these are
 *    not defined there.
 */
#if !defined(__ARM_EABI__)
#include <unwind.h>

void _Unwind_Resume(struct _Unwind_Exception *exception);
_Unwind_Reason_Code __gcc_personality_v0(int version, _Unwind_Action actions,
                                         _Unwind_Exception_Class exception_class,
                                         struct _Unwind_Exception *exception,
                                         struct _Unwind_Context *context);

void _Unwind_Resume(struct _Unwind_Exception *exception) {
  (void)exception;
  abort();
}

_Unwind_Reason_Code __gcc_personality_v0(int version, _Unwind_Action actions,
                                         _Unwind_Exception_Class exception_class,
                                         struct _Unwind_Exception *exception,
                                         struct _Unwind_Context *context) {
  (void)version, (void)actions, (void)exception_class, (void)exception, (void)context;
  abort();
}
#endif

/*
 * 4. Failed assertions (libsodium, protobuf-c and glibc itself assert).
 *    glibc's __assert_fail prints through the wide-character fprintf and
 *    gettext (20 to 30 KiB); this prints the same line with fprintf and
 *    aborts the same way. (glibc would translate the line in a non-C
 *    locale with its message catalogue installed.)
 */
void __assert_fail(const char *assertion, const char *file, unsigned int line,
                   const char *function);

void __assert_fail(const char *assertion, const char *file, unsigned int line,
                   const char *function) {
  fprintf(stderr, "%s%s%s:%u: %s%sAssertion `%s' failed.\n", program_invocation_short_name,
          program_invocation_short_name[0] ? ": " : "", file, line, function ? function : "",
          function ? ": " : "", assertion);
  abort();
}
#endif /* OPLOG_STATIC_LIBC_TEST */

/*
 * 5. sscanf. Its only caller in the command is glibc's tzset, reading the
 *    offsets and rules of a POSIX TZ string (the TZ variable, or the last
 *    line of a time zone file) with "%hu%n:%hu%n:%hu%n" and
 *    "M%hu.%hu.%hu%n"; glibc's sscanf brings its whole scanf with the
 *    float and long double parsers (30 to 60 KiB). This reads those
 *    directives (literal characters, %hu, %n) step by step as glibc's
 *    vfscanf does, down to what it leaves in errno; any other directive
 *    aborts with a message, and cmake/static-check-map.cmake fails the
 *    build if anything but tzset calls sscanf.
 */
typedef struct {
  const unsigned char *next; /* the next character of the string */
  int c;                     /* the last one read, or EOF at the end */
  int eof_errno;             /* errno when the end was reached */
  int read;                  /* characters consumed, for %n */
} tz_input;

/* vfscanf's inchar(): reading past the end again restores the errno of
 * the moment the end was reached. */
static int tz_inchar(tz_input *in) {
  if (in->c == EOF) {
    errno = in->eof_errno;
    return EOF;
  }
  if (*in->next == '\0') {
    in->eof_errno = errno;
    return in->c = EOF;
  }
  in->read++;
  return in->c = *in->next++;
}

/* vfscanf's ungetc(): the end cannot be put back. */
static void tz_ungetc(tz_input *in, int c) {
  if (c != EOF) in->next--, in->read--;
}

static int tz_vsscanf(const char *s, const char *format, va_list ap) {
  tz_input in = {(const unsigned char *)s, 0, 0, 0};
  const char *f = format;
  int done = 0, c;
#define TZ_INPUT_ERROR() return done ? done : EOF
#define TZ_CONV_ERROR() return done
  while (*f != '\0') {
    if (*f != '%' && !isspace((unsigned char)*f)) {
      /* A literal character must match. */
      c = tz_inchar(&in);
      if (c == EOF) TZ_INPUT_ERROR();
      if (c != (unsigned char)*f) {
        tz_ungetc(&in, c);
        TZ_CONV_ERROR();
      }
      f++;
      continue;
    }
    if (f[0] == '%' && f[1] == 'n') {
      *va_arg(ap, int *) = in.read;
      f += 2;
      continue;
    }
    if (!(f[0] == '%' && f[1] == 'h' && f[2] == 'u')) {
      fprintf(stderr, "oplog: sscanf format \"%s\" is not supported by the static oplog command\n",
              format);
      abort();
    }
    f += 3;
    /* White space first, with errno at 0 meanwhile. */
    int saved_errno = errno;
    errno = 0;
    do {
      if (in.c != EOF) tz_inchar(&in);
    } while (in.c != EOF && isspace(in.c));
    errno = saved_errno;
    tz_ungetc(&in, in.c);
    /* An optional sign, then decimal digits (a leading 0 says nothing
     * about the base of a %u). */
    int negative = 0, overflow = 0;
    c = tz_inchar(&in);
    if (c == EOF) TZ_INPUT_ERROR();
    if (c == '-' || c == '+') {
      negative = c == '-';
      c = tz_inchar(&in);
    }
    unsigned long v = 0;
    size_t digits = 0;
    while (c != EOF && isdigit(c)) {
      /* strtoul's overflow test */
      unsigned d = (unsigned)(c - '0');
      if (v > (ULONG_MAX - d) / 10)
        overflow = 1;
      else
        v = v * 10 + d;
      digits++;
      c = tz_inchar(&in);
    }
    tz_ungetc(&in, c);
    if (digits == 0) TZ_CONV_ERROR();
    /* strtoul's value: ULONG_MAX and ERANGE on overflow, negated for a
     * '-'; %hu keeps its low 16 bits. */
    if (overflow) {
      v = ULONG_MAX;
      errno = ERANGE;
    } else if (negative) {
      v = -v;
    }
    *va_arg(ap, unsigned short *) = (unsigned short)v;
    done++;
  }
  return done;
#undef TZ_INPUT_ERROR
#undef TZ_CONV_ERROR
}

#ifndef OPLOG_STATIC_LIBC_TEST
int __isoc99_sscanf(const char *s, const char *format, ...);

int __isoc99_sscanf(const char *s, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int n = tz_vsscanf(s, format, ap);
  va_end(ap);
  return n;
}
#endif
