/* COM1 output and a small printf: %d %i %u %x %X %s %c %p %%, with l/ll
 * length, '0' padding, a field width and a string precision. */
#include "rt.h"

#define COM1        0x3f8

/* No LSR polling: the emulated UARTs (vmm, QEMU) take a byte at once, and
 * every port access is a VM exit. */
void serial_putc(char c)
{
    outb(COM1, (uint8_t)c);
}

static void put_uint(uint64_t v, unsigned base, bool upper, int width, char pad)
{
    char buf[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v);
    while (width-- > n)
        serial_putc(pad);
    while (n)
        serial_putc(buf[--n]);
}

int vprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            serial_putc(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, lng = 0, prec = -1;
        if (*fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == '.')
            for (prec = 0, fmt++; *fmt >= '0' && *fmt <= '9'; fmt++)
                prec = prec * 10 + (*fmt - '0');
        while (*fmt == 'l')
            lng++, fmt++;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                serial_putc('-');
                put_uint((uint64_t)-v, 10, false, width - 1, pad);
            } else {
                put_uint((uint64_t)v, 10, false, width, pad);
            }
            break;
        }
        case 'u':
            put_uint(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, false, width, pad);
            break;
        case 'x':
        case 'X':
            put_uint(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, *fmt == 'X', width, pad);
            break;
        case 'p':
            serial_putc('0');
            serial_putc('x');
            put_uint((uintptr_t)va_arg(ap, void *), 16, false, width, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            for (s = s ? s : "(null)"; *s && prec--; s++)
                serial_putc(*s);
            break;
        }
        case 'c':
            serial_putc((char)va_arg(ap, int));
            break;
        case '%':
            serial_putc('%');
            break;
        default:
            serial_putc('%');
            if (*fmt)
                serial_putc(*fmt);
            else
                fmt--;
        }
    }
    return 0;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    return 0;
}
