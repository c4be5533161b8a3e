/* rtc: the CMOS clock against the host's time (hosttime=<unix seconds>,
 * taken by the runner just before the VM started): within 5 s. Handles BCD
 * and binary, 12- and 24-hour modes, and reads only outside an update (UIP). */
#include "rt.h"

#define RTC_INDEX   0x70
#define RTC_DATA    0x71
#define REG_A_UIP   0x80
#define REG_B_24H   0x02
#define REG_B_BIN   0x04
#define REG_D_VRT   0x80
#define SLACK       5

struct tm6 {
    unsigned sec, min, hour, day, mon, year;
};

static uint8_t cmos(uint8_t reg)
{
    outb(RTC_INDEX, reg);
    return inb(RTC_DATA);
}

static void read_raw(struct tm6 *t)
{
    /* Poll slowly: QEMU latches UIP until its update timer runs, and a vCPU
     * hammering the port can keep QEMU's main loop from running it. */
    for (unsigned i = 0; i < 100000 && (cmos(0x0a) & REG_A_UIP); i++)
        spin_cycles(16);
    *t = (struct tm6){ cmos(0x00), cmos(0x02), cmos(0x04), cmos(0x07), cmos(0x08), cmos(0x09) };
}

static unsigned bcd(unsigned v)
{
    return (v >> 4) * 10 + (v & 0xf);
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int main(void)
{
    uint64_t host = cmdline_get_u64("hosttime", 0);
    struct tm6 a, b;

    plan(4);
    uint8_t regd = cmos(0x0d);
    ok(regd != 0xff && (regd & REG_D_VRT), "register D 0x%x: an RTC is there and says time and RAM are valid",
       regd);
    if (regd == 0xff)
        done();
    do {
        read_raw(&a);
        read_raw(&b);
    } while (memcmp(&a, &b, sizeof(a)) != 0);
    uint8_t regb = cmos(0x0b);
    bool pm = !(regb & REG_B_24H) && (a.hour & 0x80);
    a.hour &= 0x7f;
    if (!(regb & REG_B_BIN)) {
        a.sec = bcd(a.sec), a.min = bcd(a.min), a.hour = bcd(a.hour);
        a.day = bcd(a.day), a.mon = bcd(a.mon), a.year = bcd(a.year);
    }
    if (!(regb & REG_B_24H))
        a.hour = a.hour % 12 + (pm ? 12 : 0);
    unsigned year = a.year + (a.year < 70 ? 2000 : 1900);
    diag("rtc %u-%02u-%02u %02u:%02u:%02u (%s, %s)", year, a.mon, a.day, a.hour, a.min, a.sec,
         regb & REG_B_BIN ? "binary" : "BCD", regb & REG_B_24H ? "24h" : "12h");
    ok(a.sec < 60 && a.min < 60 && a.hour < 24 && a.day >= 1 && a.day <= 31 && a.mon >= 1 && a.mon <= 12,
       "fields are in range");
    int64_t t = days_from_civil(year, a.mon, a.day) * 86400 + a.hour * 3600 + a.min * 60 + a.sec;
    ok(host != 0, "cmdline carries hosttime=%lu", host);
    int64_t diff = t - (int64_t)host;
    ok(host && diff >= -SLACK && diff <= SLACK, "RTC %ld is within %d s of the host's %lu (off by %ld s)", t, SLACK, host,
       diff);
    done();
}
