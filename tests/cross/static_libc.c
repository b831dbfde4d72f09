/*
 * cross.static_libc: src/static_libc.c's sscanf (what glibc's tzset reads a
 * POSIX TZ string with, in the static command) against glibc's own, for
 * both formats tzset uses, on every string of up to 4 characters over an
 * alphabet of what a TZ string holds (and what trips a scanner), then on
 * 200000 random longer ones: the same count, values, %n positions and
 * errno. Run under qemu for each target (tests/cross/tests.cmake).
 */
#define OPLOG_STATIC_LIBC_TEST
#include "../../src/static_libc.c"

#include <string.h>

static int ours(const char *s, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int n = tz_vsscanf(s, format, ap);
  va_end(ap);
  return n;
}

static long checked, failures;

/* Every pointer argument starts at a sentinel, so that what either
 * implementation leaves alone is compared too. */
static void compare(const char *s) {
  static const char *const formats[] = {"%hu%n:%hu%n:%hu%n", "M%hu.%hu.%hu%n"};
  for (int k = 0; k < 2; k++) {
    unsigned short a[3] = {7777, 7777, 7777}, b[3] = {7777, 7777, 7777};
    int ca[3] = {-5, -5, -5}, cb[3] = {-5, -5, -5};
    int ra, rb, ea, eb;
    errno = 42;
    if (k == 0)
      ra = sscanf(s, formats[0], &a[0], &ca[0], &a[1], &ca[1], &a[2], &ca[2]);
    else
      ra = sscanf(s, formats[1], &a[0], &a[1], &a[2], &ca[0]);
    ea = errno;
    errno = 42;
    if (k == 0)
      rb = ours(s, formats[0], &b[0], &cb[0], &b[1], &cb[1], &b[2], &cb[2]);
    else
      rb = ours(s, formats[1], &b[0], &b[1], &b[2], &cb[0]);
    eb = errno;
    checked++;
    if (ra != rb || ea != eb || memcmp(a, b, sizeof a) || memcmp(ca, cb, sizeof ca)) {
      if (failures++ < 20)
        printf("FAIL %s on \"%s\": glibc %d (%u %u %u; %d %d %d; errno %d), "
               "ours %d (%u %u %u; %d %d %d; errno %d)\n",
               formats[k], s, ra, a[0], a[1], a[2], ca[0], ca[1], ca[2], ea, rb, b[0], b[1], b[2],
               cb[0], cb[1], cb[2], eb);
    }
  }
}

int main(void) {
  static const char alphabet[] = "0123456789+-:.,/M <>AZ\t\n\x01\xa0";
  const size_t n = sizeof alphabet - 1;
  char s[64];

  /* Every string of up to 4 characters over the alphabet. */
  for (size_t len = 0; len <= 4; len++) {
    size_t total = 1;
    for (size_t i = 0; i < len; i++) total *= n;
    for (size_t v = 0; v < total; v++) {
      size_t x = v;
      for (size_t i = 0; i < len; i++, x /= n) s[i] = alphabet[x % n];
      s[len] = '\0';
      compare(s);
    }
  }

  /* Known shapes: real rules, the limits of unsigned short and of
   * unsigned long (32 and 64 bits), signs, spaces. */
  static const char *const fixed[] = {
      "1", "01:30", "5:45:59", "-3", "+14", "12:", "M3.5.0", "M10.5.0/3", "M3.2.0,M11.1.0",
      "M13.1.1", "M0.0.0", "65535", "65536", "-65535", "-65536", "4294967295", "4294967296",
      "-4294967295", "-4294967296", "18446744073709551615", "18446744073709551616",
      "-18446744073709551615", "-18446744073709551616", "99999999999999999999999999",
      "-99999999999999999999999999", "  7", "\t\n7:8", "7: 8", "7 :8", "M 3. 5. 0", "M+3.-5.+0",
      "M3.5", "M3.", "M", "", " ", "0x10", "00000000000000000000000000012:00034",
      "1:2:3:4:5", "--1", "+-1", "-+1", "-", "+",
  };
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) compare(fixed[i]);

  /* Random longer strings, digits favoured (a fixed seed: the same run
   * every time). */
  unsigned long long state = 0x9e3779b97f4a7c15ULL;
  for (int r = 0; r < 200000; r++) {
    size_t len = 1 + r % 40;
    for (size_t i = 0; i < len; i++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      unsigned v = (unsigned)(state >> 33);
      s[i] = v % 3 ? (char)('0' + v / 3 % 10) : alphabet[v / 3 % n];
    }
    s[len] = '\0';
    compare(s);
  }

  printf("%ld cases, %ld differ\n", checked, failures);
  return failures != 0;
}
