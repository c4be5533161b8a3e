#include "devices/pci/pci.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci_host.h"
#include "vmm/bus.h"
#include "vmm/log.h"

#define CMD_WRITABLE (PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER | PCI_CMD_PARITY | PCI_CMD_SERR | \
                      PCI_CMD_INTX_DISABLE)
/* Status bits a guest clears by writing 1: master data parity error,
 * signaled/received target abort, received master abort, signaled system
 * error, detected parity error. */
#define STATUS_W1C   ((1u << 8) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14) | (1u << 15))
#define CAP_MAX_END  PCI_CFG_LEGACY_SIZE

void pci_cfg_set(struct pci_device *d, unsigned off, uint32_t v, unsigned size)
{
    for (unsigned i = 0; i < size && off + i < PCI_CFG_SIZE; i++)
        d->cfg[off + i] = (uint8_t)(v >> (8 * i));
}

uint32_t pci_cfg_get(const struct pci_device *d, unsigned off, unsigned size)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size && off + i < PCI_CFG_SIZE; i++)
        v |= (uint32_t)d->cfg[off + i] << (8 * i);
    return v;
}

void pci_cfg_set_wmask(struct pci_device *d, unsigned off, uint32_t mask, unsigned size)
{
    for (unsigned i = 0; i < size && off + i < PCI_CFG_SIZE; i++)
        d->wmask[off + i] = (uint8_t)(mask >> (8 * i));
}

void pci_cfg_set_w1cmask(struct pci_device *d, unsigned off, uint32_t mask, unsigned size)
{
    for (unsigned i = 0; i < size && off + i < PCI_CFG_SIZE; i++)
        d->w1cmask[off + i] = (uint8_t)(mask >> (8 * i));
}

void pci_device_init(struct pci_device *d, const char *name, const struct pci_device_ops *ops, void *opaque,
                     uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->ops = ops;
    d->opaque = opaque;
    d->cap_free = PCI_CFG_CAP_START;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        d->bar[i] = (struct pci_bar){ .mapped = PCI_BAR_UNMAPPED, .dev = d, .index = i };
    pci_cfg_set(d, PCI_CFG_VENDOR_ID, vendor, 2);
    pci_cfg_set(d, PCI_CFG_DEVICE_ID, device, 2);
    pci_cfg_set(d, PCI_CFG_REVISION, revision, 1);
    pci_cfg_set(d, PCI_CFG_CLASS_PROG, class_code, 3);
    pci_cfg_set_wmask(d, PCI_CFG_COMMAND, CMD_WRITABLE, 2);
    pci_cfg_set_w1cmask(d, PCI_CFG_STATUS, STATUS_W1C, 2);
    pci_cfg_set_wmask(d, PCI_CFG_CACHE_LINE, 0xff, 1);
    pci_cfg_set_wmask(d, PCI_CFG_LATENCY, 0xff, 1);
    /* Scratch for the OS: it records the INTx routing here. */
    pci_cfg_set_wmask(d, PCI_CFG_INT_LINE, 0xff, 1);
}

void pci_device_set_subsystem(struct pci_device *d, uint16_t vendor, uint16_t id)
{
    pci_cfg_set(d, PCI_CFG_SUBSYS_VENDOR, vendor, 2);
    pci_cfg_set(d, PCI_CFG_SUBSYS_ID, id, 2);
}

static unsigned bar_reg(unsigned bar)
{
    return PCI_CFG_BAR0 + 4 * bar;
}

int pci_device_add_bar(struct pci_device *d, unsigned bar, enum pci_bar_type type, bool prefetch, uint64_t size)
{
    if (bar >= PCI_NUM_BARS || d->host || d->bar[bar].type != PCI_BAR_NONE || size == 0 || (size & (size - 1)))
        return -EINVAL;
    switch (type) {
    case PCI_BAR_IO:
        if (size < 4 || size > 256 || prefetch)
            return -EINVAL;
        break;
    case PCI_BAR_MEM32:
        if (size < 16 || size > (1ull << 31))
            return -EINVAL;
        break;
    case PCI_BAR_MEM64:
        if (size < 16 || bar + 1 >= PCI_NUM_BARS || d->bar[bar + 1].type != PCI_BAR_NONE)
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    struct pci_bar *b = &d->bar[bar];
    b->type = type;
    b->size = size;
    b->prefetch = prefetch;
    uint32_t flags = type == PCI_BAR_IO ? PCI_BAR_F_IO
                   : (type == PCI_BAR_MEM64 ? PCI_BAR_F_MEM64 : 0) | (prefetch ? PCI_BAR_F_PREFETCH : 0);
    uint64_t addr_mask = ~(size - 1);
    pci_cfg_set(d, bar_reg(bar), flags, 4);
    /* Writing all ones and reading back gives ~(size - 1) | flags: the size
     * probe of section 6.2.5.1. */
    pci_cfg_set_wmask(d, bar_reg(bar), (uint32_t)addr_mask & (type == PCI_BAR_IO ? ~3u : ~15u), 4);
    if (type == PCI_BAR_MEM64) {
        pci_cfg_set(d, bar_reg(bar + 1), 0, 4);
        pci_cfg_set_wmask(d, bar_reg(bar + 1), (uint32_t)(addr_mask >> 32), 4);
        d->bar[bar + 1].type = PCI_BAR_NONE;
    }
    return 0;
}

int pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned len)
{
    unsigned off = (d->cap_free + 3) & ~3u;
    if (len < 2 || off + len > CAP_MAX_END)
        return -ENOSPC;
    pci_cfg_set(d, off, id, 1);
    pci_cfg_set(d, off + 1, 0, 1);
    if (d->cap_last)
        pci_cfg_set(d, d->cap_last + 1, off, 1);
    else
        pci_cfg_set(d, PCI_CFG_CAP_PTR, off, 1);
    pci_cfg_set(d, PCI_CFG_STATUS, pci_cfg_get(d, PCI_CFG_STATUS, 2) | PCI_STATUS_CAP_LIST, 2);
    d->cap_last = off;
    d->cap_free = off + len;
    return (int)off;
}

unsigned pci_device_find_cap(const struct pci_device *d, uint8_t id)
{
    if (!(pci_cfg_get(d, PCI_CFG_STATUS, 2) & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned off = d->cfg[PCI_CFG_CAP_PTR] & ~3u;
    /* At most 48 capabilities fit in 192 bytes: a longer walk is a loop. */
    for (unsigned n = 0; off >= PCI_CFG_CAP_START && n < 48; n++) {
        if (d->cfg[off] == id)
            return off;
        off = d->cfg[off + 1] & ~3u;
    }
    return 0;
}

uint64_t pci_device_bar_addr(const struct pci_device *d, unsigned bar)
{
    return bar < PCI_NUM_BARS ? d->bar[bar].mapped : PCI_BAR_UNMAPPED;
}

/* The address BAR `bar` is programmed with (flag bits dropped). */
static uint64_t bar_programmed(const struct pci_device *d, unsigned bar)
{
    const struct pci_bar *b = &d->bar[bar];
    uint64_t v = pci_cfg_get(d, bar_reg(bar), 4);
    if (b->type == PCI_BAR_MEM64)
        v |= (uint64_t)pci_cfg_get(d, bar_reg(bar + 1), 4) << 32;
    return v & ~(b->size - 1);
}

static void bar_dispatch_read(void *opaque, uint64_t off, void *data, unsigned size)
{
    struct pci_bar *b = opaque;
    struct pci_device *d = b->dev;
    if (d->msix && msix_bar_read(d->msix, b->index, off, data, size))
        return;
    if (d->ops && d->ops->bar_read)
        d->ops->bar_read(d, b->index, off, data, size);
    else
        memset(data, 0xff, size);
}

static void bar_dispatch_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
    struct pci_bar *b = opaque;
    struct pci_device *d = b->dev;
    if (d->msix && msix_bar_write(d->msix, b->index, off, data, size))
        return;
    if (d->ops && d->ops->bar_write)
        d->ops->bar_write(d, b->index, off, data, size);
}

static const struct bus_ops bar_bus_ops = { .read = bar_dispatch_read, .write = bar_dispatch_write };

static void bar_refuse(struct pci_device *d, struct pci_bar *b, uint64_t addr, const char *why)
{
    /* The size probe (all ones) is not a placement worth a message. */
    if (b->refused_logged || addr == ~(b->size - 1) || (uint32_t)addr == (uint32_t)~(b->size - 1))
        return;
    b->refused_logged = true;
    log_warn("PCI %02x.%x %s: BAR %u at 0x%llx (size 0x%llx) %s; left unmapped", d->devfn >> 3, d->devfn & 7,
             d->name, b->index, (unsigned long long)addr, (unsigned long long)b->size, why);
}

/* Moves an ioeventfd to where its BAR now decodes (bar_addr), or drops it. */
static void ioeventfd_place(struct pci_device *d, struct pci_ioeventfd *e, uint64_t bar_addr)
{
    uint64_t want = bar_addr == PCI_BAR_UNMAPPED ? PCI_BAR_UNMAPPED : bar_addr + e->off;
    const struct pci_ioeventfd_ops *ops = d->host ? pci_host_ioeventfd_ops(d->host) : NULL;
    if (want == e->addr || !ops)
        return;
    bool pio = d->bar[e->bar].type == PCI_BAR_IO;
    if (e->addr != PCI_BAR_UNMAPPED) {
        int r = ops->set(ops->opaque, pio, e->addr, e->len, e->fd, false);
        if (r < 0)
            log_warn("PCI %s: dropping the ioeventfd at 0x%llx: %s", d->name, (unsigned long long)e->addr,
                     g_strerror(-r));
    }
    e->addr = PCI_BAR_UNMAPPED;
    if (want != PCI_BAR_UNMAPPED) {
        int r = ops->set(ops->opaque, pio, want, e->len, e->fd, true);
        if (r == 0)
            e->addr = want;
        else
            log_warn("PCI %s: ioeventfd at 0x%llx: %s; those writes take the slow path", d->name,
                     (unsigned long long)want, g_strerror(-r));
    }
}

int pci_device_add_ioeventfd(struct pci_device *d, unsigned bar, uint64_t off, unsigned len, int fd)
{
    if (bar >= PCI_NUM_BARS || d->bar[bar].type == PCI_BAR_NONE || fd < 0 ||
        (len != 0 && len != 1 && len != 2 && len != 4 && len != 8) || off >= d->bar[bar].size ||
        MAX(len, 1u) > d->bar[bar].size - off)
        return -EINVAL;
    if (d->host)
        pci_host_lock(d->host);
    int ret = 0;
    for (unsigned i = 0; i < d->nr_ioeventfds; i++)
        if (d->ioeventfds[i].fd == fd)
            ret = -EINVAL;
    if (ret == 0) {
        d->ioeventfds = g_renew(struct pci_ioeventfd, d->ioeventfds, d->nr_ioeventfds + 1);
        struct pci_ioeventfd *e = &d->ioeventfds[d->nr_ioeventfds++];
        *e = (struct pci_ioeventfd){ .bar = bar, .off = off, .len = len, .fd = fd, .addr = PCI_BAR_UNMAPPED };
        ioeventfd_place(d, e, d->bar[bar].mapped);
    }
    if (d->host)
        pci_host_unlock(d->host);
    return ret;
}

int pci_device_remove_ioeventfd(struct pci_device *d, int fd)
{
    if (d->host)
        pci_host_lock(d->host);
    int ret = -ENOENT;
    for (unsigned i = 0; i < d->nr_ioeventfds; i++) {
        if (d->ioeventfds[i].fd != fd)
            continue;
        ioeventfd_place(d, &d->ioeventfds[i], PCI_BAR_UNMAPPED);
        d->ioeventfds[i] = d->ioeventfds[--d->nr_ioeventfds];
        if (d->nr_ioeventfds == 0)
            g_clear_pointer(&d->ioeventfds, g_free);
        ret = 0;
        break;
    }
    if (d->host)
        pci_host_unlock(d->host);
    return ret;
}

static void bar_update(struct pci_device *d, unsigned bar)
{
    struct pci_bar *b = &d->bar[bar];
    if (b->type == PCI_BAR_NONE || !d->host)
        return;
    uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_CFG_COMMAND, 2);
    bool decode = b->type == PCI_BAR_IO ? (cmd & PCI_CMD_IO) : (cmd & PCI_CMD_MEMORY);
    uint64_t addr = bar_programmed(d, bar);
    uint64_t want = PCI_BAR_UNMAPPED;
    if (decode) {
        if (pci_host_window_contains(d->host, b->type, addr, b->size))
            want = addr;
        else
            bar_refuse(d, b, addr, "is outside the host bridge windows");
    }
    if (want == b->mapped)
        return;
    struct bus *bus = pci_host_bar_bus(d->host, b->type);
    if (b->mapped != PCI_BAR_UNMAPPED)
        bus_unregister(bus, b->mapped);
    b->mapped = PCI_BAR_UNMAPPED;
    if (want != PCI_BAR_UNMAPPED) {
        if (bus_register(bus, want, b->size, &bar_bus_ops, b, d->name) == 0)
            b->mapped = want;
        else
            bar_refuse(d, b, addr, "overlaps another device");
    }
    for (unsigned i = 0; i < d->nr_ioeventfds; i++)
        if (d->ioeventfds[i].bar == bar)
            ioeventfd_place(d, &d->ioeventfds[i], b->mapped);
    if (d->ops && d->ops->bar_map)
        d->ops->bar_map(d, bar, b->mapped);
}

void pci_device_update_mappings(struct pci_device *d)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        bar_update(d, i);
}

static bool overlaps(unsigned off, unsigned size, unsigned start, unsigned len)
{
    return off < start + len && start < off + size;
}

uint32_t pci_config_read(struct pci_device *d, unsigned off, unsigned size)
{
    if (size == 0 || size > 4 || off >= PCI_CFG_SIZE || off + size > PCI_CFG_SIZE)
        return 0xffffffffu;
    uint32_t v = pci_cfg_get(d, off, size);
    if (d->ops && d->ops->config_read)
        v = d->ops->config_read(d, off, size, v);
    return v;
}

void pci_config_write(struct pci_device *d, unsigned off, unsigned size, uint32_t val)
{
    if (size == 0 || size > 4 || off >= PCI_CFG_SIZE || off + size > PCI_CFG_SIZE)
        return;
    for (unsigned i = 0; i < size; i++) {
        uint8_t in = (uint8_t)(val >> (8 * i));
        uint8_t wm = d->wmask[off + i], w1c = d->w1cmask[off + i];
        d->cfg[off + i] = (uint8_t)(((d->cfg[off + i] & ~wm) | (in & wm)) & ~(in & w1c));
    }
    bool cmd = overlaps(off, size, PCI_CFG_COMMAND, 2);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        const struct pci_bar *b = &d->bar[bar];
        unsigned len = b->type == PCI_BAR_MEM64 ? 8 : 4;
        if (b->type != PCI_BAR_NONE && (cmd || overlaps(off, size, bar_reg(bar), len)))
            bar_update(d, bar);
    }
    if (d->msix) {
        unsigned cap = pci_device_find_cap(d, PCI_CAP_ID_MSIX);
        if (cap && overlaps(off, size, cap + 2, 2))
            msix_control_written(d->msix);
    }
    if (d->ops && d->ops->config_write)
        d->ops->config_write(d, off, size, val);
}

void pci_device_reset(struct pci_device *d)
{
    memcpy(d->cfg, d->cfg_reset, PCI_CFG_SIZE);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        d->bar[i].refused_logged = false;
    /* The power-on command register decodes nothing: this unmaps every BAR. */
    pci_device_update_mappings(d);
    if (d->msix)
        msix_reset(d->msix);
    if (d->ops && d->ops->reset)
        d->ops->reset(d);
}
