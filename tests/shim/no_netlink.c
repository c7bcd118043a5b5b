/*
 * no_netlink.c - LD_PRELOAD shim for the tcpconns end-to-end tests.
 *
 * Purpose: make the sock_diag netlink interface look unavailable to collectd,
 * so tests can check that the tcpconns plugin falls back to /proc/net/tcp{,6}
 * (and, with a flag file, that it copes with netlink disappearing and coming
 * back while collectd runs).
 *
 * What it does:
 *   - socket(AF_NETLINK, <any type>, NETLINK_SOCK_DIAG (4)) fails with EACCES.
 *   - send(), sendto() and sendmsg() on an already-open AF_NETLINK socket of
 *     protocol NETLINK_SOCK_DIAG fail with ECONNREFUSED, so a plugin that keeps
 *     its netlink socket open also starts failing.
 *   - Every other call goes to the real libc function (dlsym(RTLD_NEXT)).
 *
 * When it is active:
 *   - If the environment variable NO_NETLINK_FLAG is unset (or empty), always.
 *   - If NO_NETLINK_FLAG names a file, only while that file exists: a test can
 *     create and remove the file to switch netlink off and on during a run.
 *
 * Build: cc -shared -fPIC -O2 -o no_netlink.so no_netlink.c -ldl
 * Use:   LD_PRELOAD=/path/no_netlink.so collectd -f -C conf
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef NETLINK_SOCK_DIAG
#define NETLINK_SOCK_DIAG 4
#endif

typedef int (*socket_fn)(int, int, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int,
                             const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

/* Resolve a libc symbol behind this shim; abort loudly if it is missing,
 * since a silently broken socket() would make every test misleading. */
static void *next_symbol(const char *name) {
  void *sym = dlsym(RTLD_NEXT, name);
  if (sym == NULL) {
    static const char msg[] = "no_netlink shim: dlsym(RTLD_NEXT) failed\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    abort();
  }
  return sym;
}

/* Lazily resolved pointers. Resolution is idempotent, so a race between two
 * threads only resolves the same pointer twice. */
#define REAL(type, name)                                                       \
  static type real_##name = NULL;                                              \
  if (__atomic_load_n(&real_##name, __ATOMIC_ACQUIRE) == NULL)                 \
    __atomic_store_n(&real_##name, (type)next_symbol(#name), __ATOMIC_RELEASE);

/* Is the shim switched on right now? */
static int netlink_blocked(void) {
  const char *flag = getenv("NO_NETLINK_FLAG");
  if (flag == NULL || flag[0] == '\0')
    return 1;
  int saved = errno;
  int exists = access(flag, F_OK) == 0;
  errno = saved;
  return exists;
}

/* Is fd an AF_NETLINK socket speaking NETLINK_SOCK_DIAG? */
static int is_sock_diag_fd(int fd) {
  int saved = errno;
  int domain = -1, protocol = -1;
  socklen_t len = sizeof(domain);
  int ok = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
           domain == AF_NETLINK;
  if (ok) {
    len = sizeof(protocol);
    ok = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 &&
         protocol == NETLINK_SOCK_DIAG;
  }
  errno = saved;
  return ok;
}

int socket(int domain, int type, int protocol) {
  REAL(socket_fn, socket);
  if (domain == AF_NETLINK && protocol == NETLINK_SOCK_DIAG &&
      netlink_blocked()) {
    errno = EACCES;
    return -1;
  }
  return real_socket(domain, type, protocol);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  REAL(send_fn, send);
  if (is_sock_diag_fd(fd) && netlink_blocked()) {
    errno = ECONNREFUSED;
    return -1;
  }
  return real_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags,
               const struct sockaddr *addr, socklen_t addrlen) {
  REAL(sendto_fn, sendto);
  if (is_sock_diag_fd(fd) && netlink_blocked()) {
    errno = ECONNREFUSED;
    return -1;
  }
  return real_sendto(fd, buf, len, flags, addr, addrlen);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  REAL(sendmsg_fn, sendmsg);
  if (is_sock_diag_fd(fd) && netlink_blocked()) {
    errno = ECONNREFUSED;
    return -1;
  }
  return real_sendmsg(fd, msg, flags);
}
