/*
 * flynn-init: PID 1 of the jobs a client attaches to (config.stdin or
 * config.tty: `flynn run`), bound read-only at /.flynn-init.
 *
 *   /.flynn-init CMD [ARG...]
 *
 * A container's PID 1 gets no signal it has no handler for, so a command run
 * as PID 1 ignores Ctrl-C and SIGTERM. Here the command runs as init's child
 * instead, in a process group of its own that is the terminal's foreground
 * group when there is a terminal (Ctrl-C typed into the job's pty reaches
 * it). Every signal init gets (SIGTERM from a stop, signals the client sends)
 * goes to that group. Init reaps orphans and exits with the command's status:
 * its exit code, 128+N when signal N ended it, 127 when the command does not
 * exist and 126 when it cannot be run, with a message on stderr (as shells do).
 *
 * Built static and without sanitizers (src/host/module.mk): it runs inside
 * containers, whose seccomp filter denies what LeakSanitizer needs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: flynn-init CMD [ARG...]\n", stderr);
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    int tty = isatty(0);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "flynn-init: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        setpgid(0, 0);
        if (tty) /* SIGTTOU is blocked: a background group may take the terminal */
            tcsetpgrp(0, getpid());
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[1], argv + 1);
        int e = errno;
        if (e == ENOENT && !strchr(argv[1], '/'))
            fprintf(stderr, "%s: command not found\n", argv[1]);
        else
            fprintf(stderr, "%s: %s\n", argv[1], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    /* both sides set the group, so neither races the other */
    setpgid(child, child);
    if (tty)
        tcsetpgrp(0, child);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue;
        if (sig == SIGCHLD) {
            int st;
            pid_t p;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                if (p != child)
                    continue;
                /* the other processes of the job die with PID 1 */
                if (WIFSIGNALED(st))
                    return 128 + WTERMSIG(st);
                return WEXITSTATUS(st);
            }
            continue;
        }
        if (kill(-child, sig) < 0)
            kill(child, sig);
    }
}
