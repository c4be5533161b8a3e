#include "devices/rtc.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "vmm/bus.h"
#include "vmm/state.h"

/* Periodic, alarm and update-ended interrupts are not implemented: they need
 * timers, which the event loop does not have yet. The update-ended flag in
 * register C is still reported (computed when register C is read), for
 * guests that poll it. */

#define REG_SEC     0x00
#define REG_MIN     0x02
#define REG_HOUR    0x04
#define REG_WDAY    0x06
#define REG_MDAY    0x07
#define REG_MONTH   0x08
#define REG_YEAR    0x09
#define REG_A       0x0a
#define REG_B       0x0b
#define REG_C       0x0c
#define REG_D       0x0d
#define REG_CENTURY 0x32

#define A_UIP       0x80
#define B_SET       0x80
#define B_UIE       0x10
#define B_DM_BINARY 0x04
#define B_24H       0x02
#define C_IRQF      0x80
#define C_UF        0x10
#define D_VRT       0x80
#define HOUR_PM     0x80

#define CMOS_SIZE   128
/* UIP rises this long before each second boundary (244 µs at 32.768 kHz). */
#define UIP_NS      244141
#define RTC_STATE_VERSION 1

/* Broken-down time, binary values. */
struct rtc_time {
    int sec, min, hour, wday, mday, month, year, century;
};

struct rtc {
    struct bus *pio;
    struct irq_line irq;    /* IRQ 8, for when interrupts are implemented */

    pthread_mutex_t lock;
    uint8_t cmos[CMOS_SIZE];    /* registers A and B live here too */
    uint8_t index;
    int64_t offset;             /* guest seconds minus host UTC seconds */
    struct rtc_time frozen;     /* what the guest sees and writes while SET */
    int64_t last_c_read;        /* guest second when register C was last read */
};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static struct rtc_time time_from_epoch(int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    struct rtc_time r = { .sec = (int)(secs % 60), .min = (int)(secs / 60 % 60), .hour = (int)(secs / 3600) };
    r.wday = (int)(((days % 7) + 11) % 7) + 1;     /* 1970-01-01 was a Thursday; Sunday = 1 */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    r.mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    r.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t year = yoe + era * 400 + (r.month <= 2);
    r.year = (int)(((year % 100) + 100) % 100);
    r.century = (int)((year - r.year) / 100);
    return r;
}

/* Whatever the guest wrote, bounded so that the result stays a date. */
static int64_t epoch_from_time(const struct rtc_time *t)
{
    int month = CLAMP(t->month, 1, 12);
    int mday = CLAMP(t->mday, 1, 31);
    int64_t year = (int64_t)CLAMP(t->century, 0, 99) * 100 + CLAMP(t->year, 0, 99);
    int64_t days = days_from_civil(year, month, mday);
    return days * 86400 + CLAMP(t->hour, 0, 23) * 3600 + CLAMP(t->min, 0, 59) * 60 + CLAMP(t->sec, 0, 59);
}

static struct timespec host_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

static int64_t guest_now(const struct rtc *r)
{
    return host_now().tv_sec + r->offset;
}

static bool is_set(const struct rtc *r)
{
    return r->cmos[REG_B] & B_SET;
}

static struct rtc_time current_time(const struct rtc *r)
{
    return is_set(r) ? r->frozen : time_from_epoch(guest_now(r));
}

static uint8_t encode(const struct rtc *r, int v)
{
    v = CLAMP(v, 0, 99);
    if (r->cmos[REG_B] & B_DM_BINARY)
        return (uint8_t)v;
    return (uint8_t)((v / 10) << 4 | (v % 10));
}

static int decode(const struct rtc *r, uint8_t v)
{
    if (r->cmos[REG_B] & B_DM_BINARY)
        return v;
    return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode_hour(const struct rtc *r, int hour)
{
    if (r->cmos[REG_B] & B_24H)
        return encode(r, hour);
    int h12 = hour % 12 == 0 ? 12 : hour % 12;
    return (uint8_t)(encode(r, h12) | (hour >= 12 ? HOUR_PM : 0));
}

static int decode_hour(const struct rtc *r, uint8_t v)
{
    if (r->cmos[REG_B] & B_24H)
        return decode(r, v);
    int h = decode(r, v & (uint8_t)~HOUR_PM) % 12;
    return (v & HOUR_PM) ? h + 12 : h;
}

/* Points at the field a time register holds, or NULL. */
static int *time_field(struct rtc_time *t, uint8_t reg)
{
    switch (reg) {
    case REG_SEC: return &t->sec;
    case REG_MIN: return &t->min;
    case REG_HOUR: return &t->hour;
    case REG_WDAY: return &t->wday;
    case REG_MDAY: return &t->mday;
    case REG_MONTH: return &t->month;
    case REG_YEAR: return &t->year;
    case REG_CENTURY: return &t->century;
    default: return NULL;
    }
}

static uint8_t reg_read(struct rtc *r, uint8_t reg)
{
    struct rtc_time t;
    int *field;
    switch (reg) {
    case REG_A: {
        uint8_t v = r->cmos[REG_A] & 0x7f;
        if (!is_set(r) && host_now().tv_nsec >= 1000000000L - UIP_NS)
            v |= A_UIP;
        return v;
    }
    case REG_C: {
        uint8_t v = 0;
        if (!is_set(r)) {
            int64_t now = guest_now(r);
            if (now != r->last_c_read)
                v |= C_UF;
            r->last_c_read = now;
        }
        if ((v & C_UF) && (r->cmos[REG_B] & B_UIE))
            v |= C_IRQF;
        return v;
    }
    case REG_D:
        return D_VRT;
    default:
        break;
    }
    t = current_time(r);
    field = time_field(&t, reg);
    if (!field)
        return r->cmos[reg];
    return reg == REG_HOUR ? encode_hour(r, *field) : encode(r, *field);
}

static void reg_write(struct rtc *r, uint8_t reg, uint8_t v)
{
    switch (reg) {
    case REG_A:
        r->cmos[REG_A] = v & 0x7f;
        return;
    case REG_B:
        if ((v & B_SET) && !is_set(r)) {
            r->frozen = time_from_epoch(guest_now(r));
        } else if (!(v & B_SET) && is_set(r)) {
            r->offset = epoch_from_time(&r->frozen) - host_now().tv_sec;
            r->last_c_read = guest_now(r);
        }
        r->cmos[REG_B] = v;
        return;
    case REG_C:
    case REG_D:
        return;     /* read-only */
    default:
        break;
    }
    struct rtc_time t = current_time(r);
    int *field = time_field(&t, reg);
    if (!field) {
        r->cmos[reg] = v;
        return;
    }
    *field = reg == REG_HOUR ? decode_hour(r, v) : decode(r, v);
    if (is_set(r)) {
        r->frozen = t;
    } else if (reg != REG_WDAY) {
        /* A running clock takes the new field at once. */
        r->offset = epoch_from_time(&t) - host_now().tv_sec;
    }
}

static void rtc_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct rtc *r = opaque;
    uint8_t v = 0xff;   /* the index port is write-only */
    if (offset == 1) {
        pthread_mutex_lock(&r->lock);
        v = reg_read(r, r->index);
        pthread_mutex_unlock(&r->lock);
    }
    memset(data, 0, size);
    *(uint8_t *)data = v;
}

static void rtc_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct rtc *r = opaque;
    uint8_t v = *(const uint8_t *)data;
    pthread_mutex_lock(&r->lock);
    if (offset == 0)
        r->index = v & 0x7f;    /* bit 7 masks NMIs; there is no NMI source to mask */
    else
        reg_write(r, r->index, v);
    pthread_mutex_unlock(&r->lock);
}

static const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

static void rtc_reset(void *dev)
{
    struct rtc *r = dev;
    pthread_mutex_lock(&r->lock);
    /* The clock and CMOS RAM are battery-backed: a reset keeps them. */
    r->cmos[REG_A] = 0x26;      /* 32.768 kHz time base, 1024 Hz rate */
    r->cmos[REG_B] = B_24H;     /* BCD, 24-hour */
    r->index = 0;
    r->last_c_read = guest_now(r);
    pthread_mutex_unlock(&r->lock);
}

static void put_time(struct state_writer *w, const struct rtc_time *t)
{
    const int *f[] = { &t->sec, &t->min, &t->hour, &t->wday, &t->mday, &t->month, &t->year, &t->century };
    for (size_t i = 0; i < G_N_ELEMENTS(f); i++)
        state_put_u8(w, (uint8_t)*f[i]);
}

static void get_time(struct state_reader *r, struct rtc_time *t)
{
    int *f[] = { &t->sec, &t->min, &t->hour, &t->wday, &t->mday, &t->month, &t->year, &t->century };
    for (size_t i = 0; i < G_N_ELEMENTS(f); i++) {
        uint8_t v = 0;
        state_get_u8(r, &v);
        *f[i] = v;
    }
}

static int rtc_save(void *dev, struct state_writer *w)
{
    struct rtc *r = dev;
    pthread_mutex_lock(&r->lock);
    state_begin_section(w, "rtc", RTC_STATE_VERSION);
    state_put_bytes(w, r->cmos, CMOS_SIZE);
    state_put_u8(w, r->index);
    state_put_u64(w, (uint64_t)r->offset);
    put_time(w, &r->frozen);
    state_end_section(w);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static int rtc_load(void *dev, struct state_reader *rd)
{
    struct rtc *r = dev;
    uint32_t version;
    uint8_t cmos[CMOS_SIZE], index = 0;
    uint64_t offset = 0;
    struct rtc_time frozen;
    if (state_open_section(rd, "rtc", RTC_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_bytes(rd, cmos, CMOS_SIZE);
    state_get_u8(rd, &index);
    state_get_u64(rd, &offset);
    get_time(rd, &frozen);
    if (state_close_section(rd, NULL) < 0)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    memcpy(r->cmos, cmos, CMOS_SIZE);
    r->index = index & 0x7f;
    r->offset = (int64_t)offset;
    r->frozen = frozen;
    r->last_c_read = guest_now(r);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void rtc_destroy(void *dev)
{
    struct rtc *r = dev;
    bus_unregister(r->pio, PORT_RTC);
    pthread_mutex_destroy(&r->lock);
    g_free(r);
}

static const struct device_ops rtc_device_ops = {
    .type = "rtc",
    .reset = rtc_reset,
    .save = rtc_save,
    .load = rtc_load,
    .destroy = rtc_destroy,
};

struct rtc *rtc_create(struct bus *pio, struct irq_line irq)
{
    struct rtc *r = g_new0(struct rtc, 1);
    r->pio = pio;
    r->irq = irq;
    pthread_mutex_init(&r->lock, NULL);
    rtc_reset(r);
    if (bus_register(pio, PORT_RTC, 2, &rtc_ops, r, "rtc") < 0) {
        pthread_mutex_destroy(&r->lock);
        g_free(r);
        return NULL;
    }
    return r;
}

struct device rtc_device(struct rtc *r)
{
    if (!r)
        return (struct device){ 0 };
    return (struct device){ .id = "rtc", .ops = &rtc_device_ops, .dev = r };
}
