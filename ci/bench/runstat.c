/*
 * runstat [-m] OUT PROGRAM [ARGS...]
 *
 * Runs PROGRAM (a path, no PATH search), waits for it and writes one line
 * to OUT:
 *
 *   exit_status user_us system_us maxrss_kib peak_rss_kib
 *
 * The first four come from wait4(), i.e. the rusage of PROGRAM and all its
 * threads and nothing else. peak_rss_kib is -1 without -m. Exits with
 * PROGRAM's status.
 *
 * -m: measure the peak RSS exactly. Since Linux 6.2 a process's RSS counters
 * are per-CPU counters, and ru_maxrss (like the high-water mark behind
 * VmHWM) is taken from their approximate global value, which may be off by
 * up to 31 pages per CPU for each of the file and anon counters
 * (psf/pyperf#259 quotes the kernel code). Measured here, collectd -T on
 * 200k sockets, 10 runs each: ru_maxrss was 40-264 KiB below the exact RSS
 * at exit, by a different amount in every run. /proc/PID/smaps_rollup counts
 * the page tables themselves, so it is exact, but only at the moment it is
 * read. So with -m, PROGRAM runs under ptrace with a seccomp filter that
 * stops each of its threads at the entry of every system call that can
 * lower the RSS (munmap, mremap, mmap, brk, madvise, process_madvise,
 * shmdt, remap_file_pages) and at its exit; at each stop this program reads
 * smaps_rollup. RSS only grows between two such stops (no memory pressure
 * on the benchmark machine, so no reclaim), so the largest reading is the
 * peak, short only of what other threads touch between a stop and the
 * unmap it lets through (a few pages). The stops and the filter cost
 * PROGRAM CPU time: use the CPU figures of a run without -m. Under the
 * filter our plugin does not lower CAP_NET_ADMIN (src/caps.rs): its dumps
 * are then larger, its memory the same. A PROGRAM that forks is refused
 * (its children would inherit the filter untraced).
 *
 * Why not from the Python that drives the benchmark: Linux keeps the peak
 * RSS of the memory a process had before exec() in its ru_maxrss, so a
 * collectd forked from Python reports Python's ~14 MB as its peak. Forked
 * from this small program, it starts from a peak below its own. And unlike
 * GNU time, which does the same, this one reports CPU to the microsecond
 * and does not add its own fork and wait to the numbers.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __WALL
#define __WALL 0x40000000
#endif

/* Rss of /proc/PID/smaps_rollup in KiB, or -1. */
static long rollup_rss(pid_t pid) {
  char path[64], line[256];
  long value = -1;
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "Rss:", 4) == 0) {
      value = strtol(line + 4, NULL, 10);
      break;
    }
  }
  fclose(f);
  return value;
}

/* In the child, before exec: stop at the system calls that can lower the
 * RSS. Threads inherit the filter; every thread is traced (TRACECLONE), as
 * an untraced thread would get ENOSYS from SECCOMP_RET_TRACE. */
static int install_filter(void) {
#define STOP_AT(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
                    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE)
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      STOP_AT(SYS_munmap),
      STOP_AT(SYS_mremap),
      STOP_AT(SYS_mmap),
      STOP_AT(SYS_brk),
      STOP_AT(SYS_madvise),
      STOP_AT(SYS_process_madvise),
      STOP_AT(SYS_shmdt),
      STOP_AT(SYS_remap_file_pages),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
#undef STOP_AT
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv) {
  int memory = argc > 1 && strcmp(argv[1], "-m") == 0;
  if (memory) {
    argv++;
    argc--;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: runstat [-m] OUT PROGRAM [ARGS...]\n");
    return 2;
  }
#ifndef __x86_64__
  if (memory) {
    fprintf(stderr, "runstat: -m knows the x86-64 system call numbers only\n");
    return 2;
  }
#endif
  pid_t pid = fork();
  if (pid < 0) {
    perror("runstat: fork");
    return 2;
  }
  if (pid == 0) {
    if (memory) {
      if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
        perror("runstat: PTRACE_TRACEME");
        _exit(126);
      }
      if (install_filter() < 0) {
        perror("runstat: seccomp filter");
        _exit(126);
      }
    }
    execv(argv[2], argv + 2);
    perror(argv[2]);
    _exit(127);
  }
  int status;
  struct rusage ru;
  long peak = -1;
  int exec_seen = 0;
  for (;;) {
    pid_t who = wait4(memory ? -1 : pid, &status, __WALL, &ru);
    if (who < 0) {
      if (errno == EINTR) continue;
      perror("runstat: wait4");
      return 2;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (who == pid) break;
      continue;  /* one of PROGRAM's other threads */
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    if (sig == SIGTRAP && (event == PTRACE_EVENT_SECCOMP || event == PTRACE_EVENT_EXIT)) {
      long rss = rollup_rss(who);  /* a thread's view: the leader may be gone */
      if (rss > peak) peak = rss;
      sig = 0;
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_CLONE) {
      sig = 0;
    } else if (sig == SIGTRAP && (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK)) {
      fprintf(stderr, "runstat -m: %s forked; -m measures one process\n", argv[2]);
      kill(pid, SIGKILL);
      return 2;
    } else if (sig == SIGTRAP && event == 0 && who == pid && !exec_seen) {
      /* The stop after execve(). */
      exec_seen = 1;
      long options = PTRACE_O_TRACEEXIT | PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE |
                     PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;
      if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)options) < 0) {
        perror("runstat: PTRACE_SETOPTIONS");
        kill(pid, SIGKILL);
        return 2;
      }
      sig = 0;
    } else if (sig == SIGSTOP && who != pid) {
      /* A new thread starts with a SIGSTOP of its own: not PROGRAM's. */
      sig = 0;
    }
    /* Any other stop is a signal for PROGRAM: pass it on. */
    if (ptrace(PTRACE_CONT, who, NULL, (void *)(long)sig) < 0 && errno != ESRCH) {
      perror("runstat: PTRACE_CONT");
      return 2;
    }
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *out = fopen(argv[1], "w");
  if (out == NULL) {
    perror(argv[1]);
    return 2;
  }
  fprintf(out, "%d %ld %ld %ld %ld\n", code,
          (long)ru.ru_utime.tv_sec * 1000000L + (long)ru.ru_utime.tv_usec,
          (long)ru.ru_stime.tv_sec * 1000000L + (long)ru.ru_stime.tv_usec,
          (long)ru.ru_maxrss, peak);
  if (fclose(out) != 0) {
    perror(argv[1]);
    return 2;
  }
  return code;
}
