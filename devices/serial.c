#include "devices/serial.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "devices/char_backend.h"
#include "vmm/bus.h"
#include "vmm/state.h"

/* Register offsets */
#define REG_RBR_THR_DLL 0
#define REG_IER_DLM     1
#define REG_IIR_FCR     2
#define REG_LCR         3
#define REG_MCR         4
#define REG_LSR         5
#define REG_MSR         6
#define REG_SCR         7

#define IER_ERBFI   0x01    /* received data available */
#define IER_ETBEI   0x02    /* transmitter holding register empty */
#define IER_ELSI    0x04    /* receiver line status */
#define IER_EDSSI   0x08    /* modem status */
#define IER_MASK    0x0f

#define IIR_NONE    0x01
#define IIR_MSR     0x00
#define IIR_THRE    0x02
#define IIR_RDA     0x04
#define IIR_LSR     0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO    0xc0

#define FCR_ENABLE  0x01
#define FCR_CLR_RX  0x02

#define LCR_DLAB    0x80

#define MCR_DTR     0x01
#define MCR_RTS     0x02
#define MCR_OUT1    0x04
#define MCR_OUT2    0x08
#define MCR_LOOP    0x10
#define MCR_MASK    0x1f

#define LSR_DR      0x01
#define LSR_OE      0x02
#define LSR_THRE    0x20
#define LSR_TEMT    0x40

#define MSR_DCTS    0x01
#define MSR_DDSR    0x02
#define MSR_TERI    0x04
#define MSR_DDCD    0x08
#define MSR_CTS     0x10
#define MSR_DSR     0x20
#define MSR_RI      0x40
#define MSR_DCD     0x80

/* What a host that is always there looks like on the modem lines. */
#define MSR_CONNECTED (MSR_CTS | MSR_DSR | MSR_DCD)

#define RX_FIFO_SIZE 16
#define SERIAL_STATE_VERSION 1

struct serial {
    struct bus *pio;
    uint16_t base;
    struct irq_line irq;
    struct char_backend *be;

    pthread_mutex_t lock;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint16_t divisor;
    bool thr_ipending;      /* THRE interrupt latched until IIR read or THR write */
    bool rx_blocked;        /* can_receive said 0: tell the backend when room appears */
    uint8_t rx_fifo[RX_FIFO_SIZE];
    unsigned rx_head, rx_count;
    uint8_t last_rx;

    /* Serialises computing and signalling the line so that updates from
     * different threads cannot reach the interrupt controller out of order.
     * Taken before lock, never inside it. */
    pthread_mutex_t irq_lock;
    bool irq_level;
    /* THR was written: on hardware THRE drops for a character time, so the
     * next THRE interrupt is a new edge even though we transmit at once. */
    bool thr_rearm;
};

static unsigned rx_capacity(const struct serial *s)
{
    return (s->fcr & FCR_ENABLE) ? RX_FIFO_SIZE : 1;
}

static uint8_t rx_trigger(const struct serial *s)
{
    static const uint8_t levels[4] = { 1, 4, 8, 14 };
    return levels[s->fcr >> 6];
}

/* Highest-priority pending interrupt, as IIR bits 0-3. */
static uint8_t pending_iir(const struct serial *s)
{
    if ((s->ier & IER_ELSI) && (s->lsr & LSR_OE))
        return IIR_LSR;
    if ((s->ier & IER_ERBFI) && s->rx_count > 0) {
        /* No timers: the character timeout fires at once for data below the trigger. */
        if ((s->fcr & FCR_ENABLE) && s->rx_count < rx_trigger(s))
            return IIR_TIMEOUT;
        return IIR_RDA;
    }
    if ((s->ier & IER_ETBEI) && s->thr_ipending)
        return IIR_THRE;
    if ((s->ier & IER_EDSSI) && (s->msr & (MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD)))
        return IIR_MSR;
    return IIR_NONE;
}

/* Call with neither lock held, after any change that may move the line. */
static void update_irq(struct serial *s)
{
    pthread_mutex_lock(&s->irq_lock);
    pthread_mutex_lock(&s->lock);
    /* OUT2 gates the UART's interrupt output on PCs. */
    bool level = pending_iir(s) != IIR_NONE && (s->mcr & MCR_OUT2);
    bool changed = level != s->irq_level;
    bool rearm = s->thr_rearm && level && !changed;
    s->thr_rearm = false;
    s->irq_level = level;
    pthread_mutex_unlock(&s->lock);
    if (rearm)
        irq_line_set(&s->irq, false);
    if (changed || rearm)
        irq_line_set(&s->irq, level);
    pthread_mutex_unlock(&s->irq_lock);
}

static void rx_push(struct serial *s, uint8_t c)
{
    if (s->rx_count >= rx_capacity(s)) {
        s->lsr |= LSR_OE;
        return;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % RX_FIFO_SIZE] = c;
    s->rx_count++;
    s->lsr |= LSR_DR;
}

static void rx_clear(struct serial *s)
{
    s->rx_head = s->rx_count = 0;
    s->lsr &= (uint8_t)~LSR_DR;
}

/* Returns whether the backend should be told there is room again. */
static bool take_rx_unblock(struct serial *s)
{
    bool r = s->rx_blocked && !(s->mcr & MCR_LOOP) && s->rx_count < rx_capacity(s);
    if (r)
        s->rx_blocked = false;
    return r;
}

static void backend_unblock(struct serial *s)
{
    if (s->be)
        char_backend_accept_input(s->be);
}

/* Modem inputs: wired to the outputs in loopback, else a connected host. */
static uint8_t modem_inputs(uint8_t mcr)
{
    if (!(mcr & MCR_LOOP))
        return MSR_CONNECTED;
    uint8_t v = 0;
    if (mcr & MCR_RTS)
        v |= MSR_CTS;
    if (mcr & MCR_DTR)
        v |= MSR_DSR;
    if (mcr & MCR_OUT1)
        v |= MSR_RI;
    if (mcr & MCR_OUT2)
        v |= MSR_DCD;
    return v;
}

static void set_modem_inputs(struct serial *s, uint8_t in)
{
    uint8_t old = s->msr;
    uint8_t delta = 0;
    if ((old ^ in) & MSR_CTS)
        delta |= MSR_DCTS;
    if ((old ^ in) & MSR_DSR)
        delta |= MSR_DDSR;
    if ((old & MSR_RI) && !(in & MSR_RI))
        delta |= MSR_TERI;
    if ((old ^ in) & MSR_DCD)
        delta |= MSR_DDCD;
    s->msr = (uint8_t)((old & 0x0f) | delta | in);
}

static void serial_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    struct serial *s = opaque;
    uint8_t v = 0;
    bool unblock = false;

    pthread_mutex_lock(&s->lock);
    switch (offset) {
    case REG_RBR_THR_DLL:
        if (s->lcr & LCR_DLAB) {
            v = (uint8_t)s->divisor;
        } else {
            if (s->rx_count > 0) {
                s->last_rx = s->rx_fifo[s->rx_head];
                s->rx_head = (s->rx_head + 1) % RX_FIFO_SIZE;
                if (--s->rx_count == 0)
                    s->lsr &= (uint8_t)~LSR_DR;
            }
            v = s->last_rx;
            unblock = take_rx_unblock(s);
        }
        break;
    case REG_IER_DLM:
        v = (s->lcr & LCR_DLAB) ? (uint8_t)(s->divisor >> 8) : s->ier;
        break;
    case REG_IIR_FCR:
        v = pending_iir(s);
        if (v == IIR_THRE)
            s->thr_ipending = false;
        if (s->fcr & FCR_ENABLE)
            v |= IIR_FIFO;
        break;
    case REG_LCR:
        v = s->lcr;
        break;
    case REG_MCR:
        v = s->mcr;
        break;
    case REG_LSR:
        v = s->lsr | LSR_THRE | LSR_TEMT;
        s->lsr &= (uint8_t)~LSR_OE;
        break;
    case REG_MSR:
        v = s->msr;
        s->msr &= 0xf0;
        break;
    case REG_SCR:
        v = s->scr;
        break;
    }
    pthread_mutex_unlock(&s->lock);

    memset(data, 0, size);
    *(uint8_t *)data = v;
    if (unblock)
        backend_unblock(s);
    update_irq(s);
}

static void serial_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    struct serial *s = opaque;
    uint8_t v = *(const uint8_t *)data;     /* wider accesses hit one 8-bit register */
    bool transmit = false, unblock = false;

    pthread_mutex_lock(&s->lock);
    switch (offset) {
    case REG_RBR_THR_DLL:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (uint16_t)((s->divisor & 0xff00) | v);
        } else if (s->mcr & MCR_LOOP) {
            rx_push(s, v);
            s->thr_ipending = true;
            s->thr_rearm = true;
        } else {
            transmit = true;
            /* Sent at once, so the holding register is empty again. */
            s->thr_ipending = true;
            s->thr_rearm = true;
        }
        break;
    case REG_IER_DLM:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (uint16_t)((s->divisor & 0x00ff) | (v << 8));
        } else {
            uint8_t old = s->ier;
            s->ier = v & IER_MASK;
            if (!(old & IER_ETBEI) && (s->ier & IER_ETBEI))
                s->thr_ipending = true;
        }
        break;
    case REG_IIR_FCR: {
        uint8_t old = s->fcr;
        s->fcr = v & (uint8_t)~0x36;    /* keep enable and trigger; bits 1-2 self-clear */
        if (((old ^ v) & FCR_ENABLE) || (v & FCR_CLR_RX))
            rx_clear(s);
        if (!(s->fcr & FCR_ENABLE))
            s->fcr = 0;
        unblock = take_rx_unblock(s);
        break;
    }
    case REG_LCR:
        s->lcr = v;
        break;
    case REG_MCR: {
        uint8_t old = s->mcr;
        s->mcr = v & MCR_MASK;
        if ((old ^ s->mcr) & (MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2))
            set_modem_inputs(s, modem_inputs(s->mcr));
        unblock = take_rx_unblock(s);
        break;
    }
    case REG_LSR:
    case REG_MSR:
        break;      /* read-only here; factory-test writes are ignored */
    case REG_SCR:
        s->scr = v;
        break;
    }
    pthread_mutex_unlock(&s->lock);

    if (transmit && s->be)
        char_backend_write(s->be, &v, 1);
    if (unblock)
        backend_unblock(s);
    update_irq(s);
}

static size_t serial_can_receive(void *opaque)
{
    struct serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    /* In loopback the receiver is disconnected from the line. */
    size_t room = (s->mcr & MCR_LOOP) ? 0 : rx_capacity(s) - s->rx_count;
    if (room == 0)
        s->rx_blocked = true;
    pthread_mutex_unlock(&s->lock);
    return room;
}

static void serial_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct serial *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (!(s->mcr & MCR_LOOP))
        for (size_t i = 0; i < len; i++)
            rx_push(s, buf[i]);
    pthread_mutex_unlock(&s->lock);
    update_irq(s);
}

static const struct bus_ops serial_ops = { .read = serial_read, .write = serial_write };

static void serial_reset(void *dev)
{
    struct serial *s = dev;
    pthread_mutex_lock(&s->lock);
    s->ier = 0;
    s->lcr = 0x03;      /* 8N1 */
    s->mcr = 0;
    s->lsr = 0;
    s->msr = MSR_CONNECTED;
    s->scr = 0;
    s->fcr = 0;
    s->divisor = 12;    /* 9600 baud */
    s->thr_ipending = false;
    s->last_rx = 0;
    rx_clear(s);
    bool unblock = take_rx_unblock(s);
    pthread_mutex_unlock(&s->lock);
    if (unblock)
        backend_unblock(s);
    update_irq(s);
}

static int serial_save(void *dev, struct state_writer *w)
{
    struct serial *s = dev;
    pthread_mutex_lock(&s->lock);
    state_begin_section(w, "serial", SERIAL_STATE_VERSION);
    state_put_u16(w, s->base);
    state_put_u8(w, s->ier);
    state_put_u8(w, s->lcr);
    state_put_u8(w, s->mcr);
    state_put_u8(w, s->lsr);
    state_put_u8(w, s->msr);
    state_put_u8(w, s->scr);
    state_put_u8(w, s->fcr);
    state_put_u16(w, s->divisor);
    state_put_u8(w, s->thr_ipending);
    state_put_u8(w, s->last_rx);
    state_put_u8(w, (uint8_t)s->rx_count);
    for (unsigned i = 0; i < s->rx_count; i++)
        state_put_u8(w, s->rx_fifo[(s->rx_head + i) % RX_FIFO_SIZE]);
    state_end_section(w);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int serial_load(void *dev, struct state_reader *r)
{
    struct serial *s = dev;
    uint32_t version;
    uint16_t base, divisor;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr, thr, last_rx, count;
    uint8_t fifo[RX_FIFO_SIZE];

    if (state_open_section(r, "serial", SERIAL_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_u16(r, &base);
    state_get_u8(r, &ier);
    state_get_u8(r, &lcr);
    state_get_u8(r, &mcr);
    state_get_u8(r, &lsr);
    state_get_u8(r, &msr);
    state_get_u8(r, &scr);
    state_get_u8(r, &fcr);
    state_get_u16(r, &divisor);
    state_get_u8(r, &thr);
    state_get_u8(r, &last_rx);
    if (state_get_u8(r, &count) < 0 || count > RX_FIFO_SIZE || base != s->base)
        return -EINVAL;
    if (state_get_bytes(r, fifo, count) < 0 || state_close_section(r, NULL) < 0)
        return -EINVAL;
    if (count > ((fcr & FCR_ENABLE) ? RX_FIFO_SIZE : 1))
        return -EINVAL;

    pthread_mutex_lock(&s->lock);
    s->ier = ier & IER_MASK;
    s->lcr = lcr;
    s->mcr = mcr & MCR_MASK;
    s->lsr = (lsr & LSR_OE) | (count ? LSR_DR : 0);
    s->msr = msr;
    s->scr = scr;
    s->fcr = (fcr & FCR_ENABLE) ? (fcr & 0xc9) : 0;
    s->divisor = divisor;
    s->thr_ipending = thr != 0;
    s->last_rx = last_rx;
    memcpy(s->rx_fifo, fifo, count);
    s->rx_head = 0;
    s->rx_count = count;
    s->rx_blocked = true;   /* the backend may have been paused by the old state */
    bool unblock = take_rx_unblock(s);
    pthread_mutex_unlock(&s->lock);
    if (unblock)
        backend_unblock(s);
    update_irq(s);
    return 0;
}

static void serial_destroy(void *dev)
{
    struct serial *s = dev;
    if (s->be)
        char_backend_set_frontend(s->be, NULL);
    bus_unregister(s->pio, s->base);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->irq_lock);
    g_free(s);
}

static const struct device_ops serial_device_ops = {
    .type = "serial",
    .reset = serial_reset,
    .save = serial_save,
    .load = serial_load,
    .destroy = serial_destroy,
};

struct serial *serial_create(struct bus *pio, uint16_t base, struct irq_line irq, struct char_backend *be)
{
    struct serial *s = g_new0(struct serial, 1);
    s->pio = pio;
    s->base = base;
    s->irq = irq;
    s->be = be;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->irq_lock, NULL);
    serial_reset(s);
    if (bus_register(pio, base, 8, &serial_ops, s, "serial") < 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->irq_lock);
        g_free(s);
        return NULL;
    }
    if (be) {
        struct char_frontend fe = { serial_can_receive, serial_receive, s };
        char_backend_set_frontend(be, &fe);
    }
    return s;
}

struct device serial_device(struct serial *s)
{
    if (!s)
        return (struct device){ 0 };
    return (struct device){ .id = "serial0", .ops = &serial_device_ops, .dev = s };
}
