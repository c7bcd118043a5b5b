/*
 * runstat OUT PROGRAM [ARGS...]
 *
 * Runs PROGRAM (a path, no PATH search), waits for it and writes one line
 * to OUT: "exit_status user_us system_us maxrss_kib", from wait4(), i.e. the
 * rusage of PROGRAM and all its threads and nothing else. Exits with
 * PROGRAM's status.
 *
 * Why not from the Python that drives the benchmark: Linux keeps the peak
 * RSS of the memory a process had before exec() in its ru_maxrss, so a
 * collectd forked from Python reports Python's ~14 MB as its peak. Forked
 * from this small program, it starts from a peak below its own. And unlike
 * GNU time, which does the same, this one reports CPU to the microsecond
 * and does not add its own fork and wait to the numbers.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: runstat OUT PROGRAM [ARGS...]\n");
    return 2;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("runstat: fork");
    return 2;
  }
  if (pid == 0) {
    execv(argv[2], argv + 2);
    perror(argv[2]);
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) {
    perror("runstat: wait4");
    return 2;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *out = fopen(argv[1], "w");
  if (out == NULL) {
    perror(argv[1]);
    return 2;
  }
  fprintf(out, "%d %ld %ld %ld\n", code,
          (long)ru.ru_utime.tv_sec * 1000000L + (long)ru.ru_utime.tv_usec,
          (long)ru.ru_stime.tv_sec * 1000000L + (long)ru.ru_stime.tv_usec,
          (long)ru.ru_maxrss);
  if (fclose(out) != 0) {
    perror(argv[1]);
    return 2;
  }
  return code;
}
