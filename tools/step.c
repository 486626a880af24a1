/*
 * step: runs a command under PTRACE_SINGLESTEP and prints every distinct
 * instruction address it executes in [LO, HI) (hex, one per line) on
 * standard output; the command's own output goes to /dev/null.
 *
 *   step LO HI PROGRAM [ARGS...]
 *
 * Used by tools/order-file (make order-file) to find the functions a run of
 * `host run hello` executes, so the linker can put them side by side.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAP (1u << 22)
static uint64_t seen[CAP];

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: step LO HI PROGRAM [ARGS...]\n");
		return 2;
	}
	uint64_t lo = strtoull(argv[1], 0, 16), hi = strtoull(argv[2], 0, 16);
	pid_t p = fork();
	if (p < 0) {
		perror("fork");
		return 1;
	}
	if (p == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execv(argv[3], argv + 3);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) < 0 || !WIFSTOPPED(st)) {
		fprintf(stderr, "step: %s did not start\n", argv[3]);
		return 1;
	}
	long steps = 0, distinct = 0;
	int sig = 0;
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, p, 0, sig) < 0)
			break;
		if (waitpid(p, &st, 0) < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			break;
		sig = WSTOPSIG(st) == SIGTRAP ? 0 : WSTOPSIG(st);
		struct user_regs_struct r;
		if (ptrace(PTRACE_GETREGS, p, 0, &r) < 0)
			break;
		steps++;
		uint64_t a = r.rip;
		if (a < lo || a >= hi)
			continue;
		for (uint64_t h = (a * 0x9E3779B97F4A7C15ull) >> 42;; h++) {
			h &= CAP - 1;
			if (seen[h] == a)
				break;
			if (!seen[h]) {
				seen[h] = a;
				distinct++;
				break;
			}
		}
	}
	for (uint64_t i = 0; i < CAP; i++)
		if (seen[i])
			printf("%lx\n", (unsigned long)seen[i]);
	fprintf(stderr, "step: %ld instructions, %ld distinct addresses in range\n", steps, distinct);
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
		fprintf(stderr, "step: the command exited with %d\n", WEXITSTATUS(st));
		return 1;
	}
	return 0;
}
