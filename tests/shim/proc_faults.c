/*
 * proc_faults.c - LD_PRELOAD shim for the tcpconns fault tests.
 *
 * Makes opening chosen files fail, or opens another file in their place, so
 * tests can show what the plugin does when /proc/net/tcp6 is missing (IPv6
 * disabled) or unreadable, when /proc/net/tcp cannot be read, or when a
 * table holds lines the kernel would not normally print.
 *
 * PROC_FAULTS is a comma-separated list of PATH=ACTION, ACTION one of
 *   ENOENT, EACCES   open() of PATH fails with that errno
 *   @OTHER           open() of PATH opens OTHER instead
 * e.g. PROC_FAULTS=/proc/net/tcp6=ENOENT,/proc/net/tcp=@/tmp/fixture
 *
 * Build: cc -shared -fPIC -O2 -o proc_faults.so proc_faults.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef int (*open_fn)(const char *, int, ...);

/* Looks `path` up in PROC_FAULTS. Returns 0 for no fault, -1 with errno set
 * for a failing open, or 1 with *other pointing into `buf` for a redirect. */
static int lookup(const char *path, char *buf, size_t len, const char **other) {
  const char *spec = getenv("PROC_FAULTS");
  if (spec == NULL || path == NULL)
    return 0;
  size_t plen = strlen(path);
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > plen && strncmp(p, path, plen) == 0 && p[plen] == '=') {
      const char *action = p + plen + 1;
      size_t alen = n - plen - 1;
      if (alen == 6 && strncmp(action, "ENOENT", 6) == 0) {
        errno = ENOENT;
        return -1;
      }
      if (alen == 6 && strncmp(action, "EACCES", 6) == 0) {
        errno = EACCES;
        return -1;
      }
      if (alen > 1 && action[0] == '@' && alen < len) {
        memcpy(buf, action + 1, alen - 1);
        buf[alen - 1] = '\0';
        *other = buf;
        return 1;
      }
    }
    p += n;
    if (*p == ',')
      p++;
  }
  return 0;
}

static int faulty_open(const char *name, const char *path, int flags, mode_t mode) {
  open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
  char buf[4096];
  const char *other = NULL;
  int r = lookup(path, buf, sizeof(buf), &other);
  if (r < 0)
    return -1;
  if (r > 0)
    path = other;
  return real(path, flags, mode);
}

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return faulty_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return faulty_open("open64", path, flags, mode);
}
