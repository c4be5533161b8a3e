/* no-uring: runs a program with io_uring made unavailable, as Docker's default
 * seccomp profile does: a seccomp filter (libseccomp; no root needed, it sets
 * no_new_privs) makes io_uring_setup fail with ENOSYS, then execs argv.
 *
 * usage: no-uring PROGRAM [ARG...] */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: no-uring PROGRAM [ARG...]\n");
        return 2;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r = ctx ? seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0) : -ENOMEM;
    if (r == 0)
        r = seccomp_load(ctx);
    if (r < 0) {
        fprintf(stderr, "no-uring: cannot install the seccomp filter: %s\n", strerror(-r));
        return 2;
    }
    seccomp_release(ctx);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no-uring: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
