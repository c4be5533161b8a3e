#include "rt.h"

#define DEBUG_EXIT_PORT 0xf4

static unsigned planned, run, failed;

void plan(unsigned n)
{
    planned = n;
    printf("1..%u\n", n);
}

bool ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    run++;
    if (!cond)
        failed++;
    printf("%sok %u - ", cond ? "" : "not ", run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return cond;
}

unsigned failures(void)
{
    return failed;
}

void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void debug_exit(uint8_t v)
{
    outb(DEBUG_EXIT_PORT, v);
    printf("# debug-exit port 0x%x did not stop the VM\n", DEBUG_EXIT_PORT);
    halt_forever();
}

void done(void)
{
    if (run != planned)
        diag("planned %u tests but ran %u", planned, run);
    debug_exit(failed || run != planned ? 1 : 0);
}
