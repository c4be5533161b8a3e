#include "devices/i8042.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "vmm/bus.h"
#include "vmm/state.h"

#define STS_OBF     0x01
#define STS_SYS     0x04
#define STS_CMD     0x08    /* last write went to the command port */
#define STS_UNLOCK  0x10    /* keyboard not inhibited */
#define STS_AUXB    0x20    /* the output byte came from the aux port */

#define CTR_SYS     0x04
#define CTR_KBDDIS  0x10
#define CTR_AUXDIS  0x20

#define OUTPORT_RESET_N 0x01    /* active low: clearing it resets the CPU */
#define OUTPORT_A20     0x02

#define KBD_ACK     0xfa

#define OUT_QUEUE_SIZE 16
#define I8042_STATE_VERSION 1

struct i8042 {
    struct bus *pio;
    struct machine_ctl ctl;

    pthread_mutex_t lock;
    uint8_t ctr;            /* controller command byte */
    uint8_t outport;
    uint8_t pending;        /* controller command waiting for its data byte, or 0 */
    uint8_t kbd_pending;    /* keyboard command waiting for its parameter, or 0 */
    bool last_was_cmd;
    uint8_t last_out;
    /* Output queue: byte plus whether it is aux data, oldest first. */
    uint8_t q[OUT_QUEUE_SIZE];
    bool q_aux[OUT_QUEUE_SIZE];
    unsigned q_head, q_count;
};

static void push(struct i8042 *k, uint8_t v, bool aux)
{
    if (k->q_count == OUT_QUEUE_SIZE)
        return;
    unsigned i = (k->q_head + k->q_count) % OUT_QUEUE_SIZE;
    k->q[i] = v;
    k->q_aux[i] = aux;
    k->q_count++;
}

static uint8_t status(const struct i8042 *k)
{
    uint8_t s = STS_UNLOCK;
    if (k->q_count) {
        s |= STS_OBF;
        if (k->q_aux[k->q_head])
            s |= STS_AUXB;
    }
    if (k->ctr & CTR_SYS)
        s |= STS_SYS;
    if (k->last_was_cmd)
        s |= STS_CMD;
    return s;
}

static void keyboard_command(struct i8042 *k, uint8_t v)
{
    if (k->kbd_pending) {
        /* The parameter of LEDs / typematic / scan-code set. */
        uint8_t cmd = k->kbd_pending;
        k->kbd_pending = 0;
        push(k, KBD_ACK, false);
        if (cmd == 0xf0 && v == 0)
            push(k, 0x02, false);   /* current scan-code set */
        return;
    }
    switch (v) {
    case 0xff:                      /* reset and self-test */
        push(k, KBD_ACK, false);
        push(k, 0xaa, false);
        break;
    case 0xf2:                      /* identify: MF2 keyboard */
        push(k, KBD_ACK, false);
        push(k, 0xab, false);
        push(k, 0x83, false);
        break;
    case 0xee:                      /* echo */
        push(k, 0xee, false);
        break;
    case 0xed:
    case 0xf0:
    case 0xf3:
        k->kbd_pending = v;
        push(k, KBD_ACK, false);
        break;
    default:
        push(k, KBD_ACK, false);
        break;
    }
}

/* Returns true when the write asks for a machine reset. */
static bool data_write(struct i8042 *k, uint8_t v)
{
    uint8_t cmd = k->pending;
    k->pending = 0;
    switch (cmd) {
    case 0x60:
        k->ctr = v;
        return false;
    case 0xd1:
        k->outport = v;
        return !(v & OUTPORT_RESET_N);
    case 0xd2:
        push(k, v, false);
        return false;
    case 0xd3:
        push(k, v, true);
        return false;
    case 0xd4:
        /* No mouse behind the aux port: its bytes go nowhere. */
        return false;
    default:
        keyboard_command(k, v);
        return false;
    }
}

static bool command_write(struct i8042 *k, uint8_t v)
{
    k->pending = 0;
    if (v >= 0xf0)      /* pulse the output-port lines whose bit is 0 */
        return !(v & OUTPORT_RESET_N);
    switch (v) {
    case 0x20:
        push(k, k->ctr, false);
        break;
    case 0x60:
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xd4:
        k->pending = v;
        break;
    case 0xa7:
        k->ctr |= CTR_AUXDIS;
        break;
    case 0xa8:
        k->ctr &= (uint8_t)~CTR_AUXDIS;
        break;
    case 0xa9:          /* aux interface test: passed */
    case 0xab:          /* keyboard interface test: passed */
        push(k, 0x00, false);
        break;
    case 0xaa:          /* controller self-test */
        k->ctr |= CTR_SYS;
        push(k, 0x55, false);
        break;
    case 0xad:
        k->ctr |= CTR_KBDDIS;
        break;
    case 0xae:
        k->ctr &= (uint8_t)~CTR_KBDDIS;
        break;
    case 0xd0:
        push(k, k->outport, false);
        break;
    default:
        break;          /* vendor commands: ignored */
    }
    return false;
}

static void i8042_read(void *opaque, uint64_t offset, void *data, unsigned size, bool is_cmd_port)
{
    struct i8042 *k = opaque;
    uint8_t v;
    pthread_mutex_lock(&k->lock);
    if (is_cmd_port) {
        v = status(k);
    } else {
        if (k->q_count) {
            k->last_out = k->q[k->q_head];
            k->q_head = (k->q_head + 1) % OUT_QUEUE_SIZE;
            k->q_count--;
        }
        v = k->last_out;
    }
    pthread_mutex_unlock(&k->lock);
    memset(data, 0, size);
    *(uint8_t *)data = v;
}

static void i8042_write(void *opaque, const void *data, bool is_cmd_port)
{
    struct i8042 *k = opaque;
    uint8_t v = *(const uint8_t *)data;
    pthread_mutex_lock(&k->lock);
    k->last_was_cmd = is_cmd_port;
    bool reset = is_cmd_port ? command_write(k, v) : data_write(k, v);
    pthread_mutex_unlock(&k->lock);
    if (reset)
        machine_request(&k->ctl, MACHINE_RESET, 0);
}

static void data_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    i8042_read(opaque, offset, data, size, false);
}

static void cmd_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    i8042_read(opaque, offset, data, size, true);
}

static void data_write_op(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    i8042_write(opaque, data, false);
}

static void cmd_write_op(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    i8042_write(opaque, data, true);
}

static const struct bus_ops data_ops = { .read = data_read, .write = data_write_op };
static const struct bus_ops cmd_ops = { .read = cmd_read, .write = cmd_write_op };

static void i8042_reset(void *dev)
{
    struct i8042 *k = dev;
    pthread_mutex_lock(&k->lock);
    /* As a BIOS leaves it: self-test done, keyboard interrupt and translation on. */
    k->ctr = 0x45;
    k->outport = OUTPORT_RESET_N | OUTPORT_A20;
    k->pending = k->kbd_pending = 0;
    k->last_was_cmd = false;
    k->last_out = 0;
    k->q_head = k->q_count = 0;
    pthread_mutex_unlock(&k->lock);
}

static int i8042_save(void *dev, struct state_writer *w)
{
    struct i8042 *k = dev;
    pthread_mutex_lock(&k->lock);
    state_begin_section(w, "i8042", I8042_STATE_VERSION);
    state_put_u8(w, k->ctr);
    state_put_u8(w, k->outport);
    state_put_u8(w, k->pending);
    state_put_u8(w, k->kbd_pending);
    state_put_u8(w, k->last_was_cmd);
    state_put_u8(w, k->last_out);
    state_put_u8(w, (uint8_t)k->q_count);
    for (unsigned i = 0; i < k->q_count; i++) {
        unsigned j = (k->q_head + i) % OUT_QUEUE_SIZE;
        state_put_u8(w, k->q[j]);
        state_put_u8(w, k->q_aux[j]);
    }
    state_end_section(w);
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static int i8042_load(void *dev, struct state_reader *r)
{
    struct i8042 *k = dev;
    uint32_t version;
    uint8_t ctr, outport, pending, kbd_pending, last_cmd, last_out, count;
    uint8_t q[OUT_QUEUE_SIZE], aux[OUT_QUEUE_SIZE];
    if (state_open_section(r, "i8042", I8042_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_u8(r, &ctr);
    state_get_u8(r, &outport);
    state_get_u8(r, &pending);
    state_get_u8(r, &kbd_pending);
    state_get_u8(r, &last_cmd);
    state_get_u8(r, &last_out);
    if (state_get_u8(r, &count) < 0 || count > OUT_QUEUE_SIZE)
        return -EINVAL;
    for (unsigned i = 0; i < count; i++) {
        state_get_u8(r, &q[i]);
        state_get_u8(r, &aux[i]);
    }
    if (state_close_section(r, NULL) < 0)
        return -EINVAL;
    pthread_mutex_lock(&k->lock);
    k->ctr = ctr;
    k->outport = outport;
    k->pending = pending;
    k->kbd_pending = kbd_pending;
    k->last_was_cmd = last_cmd != 0;
    k->last_out = last_out;
    k->q_head = 0;
    k->q_count = count;
    for (unsigned i = 0; i < count; i++) {
        k->q[i] = q[i];
        k->q_aux[i] = aux[i] != 0;
    }
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static void i8042_destroy(void *dev)
{
    struct i8042 *k = dev;
    bus_unregister(k->pio, PORT_I8042_DATA);
    bus_unregister(k->pio, PORT_I8042_CMD);
    pthread_mutex_destroy(&k->lock);
    g_free(k);
}

static const struct device_ops i8042_device_ops = {
    .type = "i8042",
    .reset = i8042_reset,
    .save = i8042_save,
    .load = i8042_load,
    .destroy = i8042_destroy,
};

struct i8042 *i8042_create(struct bus *pio, struct machine_ctl ctl)
{
    struct i8042 *k = g_new0(struct i8042, 1);
    k->pio = pio;
    k->ctl = ctl;
    pthread_mutex_init(&k->lock, NULL);
    i8042_reset(k);
    if (bus_register(pio, PORT_I8042_DATA, 1, &data_ops, k, "i8042-data") < 0) {
        pthread_mutex_destroy(&k->lock);
        g_free(k);
        return NULL;
    }
    if (bus_register(pio, PORT_I8042_CMD, 1, &cmd_ops, k, "i8042-cmd") < 0) {
        bus_unregister(pio, PORT_I8042_DATA);
        pthread_mutex_destroy(&k->lock);
        g_free(k);
        return NULL;
    }
    return k;
}

struct device i8042_device(struct i8042 *k)
{
    if (!k)
        return (struct device){ 0 };
    return (struct device){ .id = "i8042", .ops = &i8042_device_ops, .dev = k };
}
