#include "devices/pci/pci_host.h"

#include <errno.h>
#include <glib.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>

#include "devices/pci/msix.h"
#include "vmm/bus.h"
#include "vmm/state.h"

#define ECAM_BUS_SHIFT      20
#define ECAM_DEVFN_SHIFT    12
#define CF8_ENABLE          (1u << 31)
#define CF8_BUS(a)          (((a) >> 16) & 0xff)
#define CF8_DEVFN(a)        (((a) >> 8) & 0xff)
#define CF8_REG(a)          ((a) & 0xfc)
#define PCI_HOST_STATE_VERSION 1

struct pci_host {
    struct bus *pio;
    struct bus *mmio;
    struct pci_host_config cfg;
    bool ecam_registered, cf8_registered;
    struct pci_ioeventfd_ops ioeventfd_ops;
    bool has_ioeventfd_ops;

    /* Serializes every config access and BAR (re)mapping. */
    pthread_mutex_t lock;
    uint32_t config_addr;                   /* the 0xCF8 register */
    struct pci_device *slots[PCI_MAX_SLOTS];    /* function 0 of each slot; [0] the bridge */
    struct pci_device bridge;
    uint64_t next_mmio32, next_mmio64, next_io; /* firmware-style BAR assignment cursors */
};

struct pci_device *pci_host_slot(struct pci_host *h, unsigned slot)
{
    return slot < PCI_MAX_SLOTS ? h->slots[slot] : NULL;
}

static struct pci_device *lookup(struct pci_host *h, unsigned bus, unsigned devfn)
{
    if (bus != 0 || (devfn & 7) != 0)
        return NULL;
    return h->slots[devfn >> 3];
}

/* Splits an access into ones a function can take: naturally aligned 1, 2
 * or 4 bytes inside one dword; anything odd goes byte by byte. */
static void config_access(struct pci_host *h, unsigned bus, unsigned devfn, unsigned reg, uint8_t *data,
                          unsigned size, bool write)
{
    struct pci_device *d = lookup(h, bus, devfn);
    for (unsigned done = 0; done < size;) {
        unsigned off = reg + done, n = 4;
        while (n > size - done || off % n)
            n /= 2;
        if (!d || off + n > PCI_CFG_SIZE) {
            if (!write)
                memset(data + done, 0xff, n);
        } else if (write) {
            uint32_t v = 0;
            memcpy(&v, data + done, n);
            pci_config_write(d, off, n, v);
        } else {
            uint32_t v = pci_config_read(d, off, n);
            memcpy(data + done, &v, n);
        }
        done += n;
    }
}

static void ecam_access(struct pci_host *h, uint64_t offset, uint8_t *data, unsigned size, bool write)
{
    unsigned bus = (unsigned)(offset >> ECAM_BUS_SHIFT);
    unsigned devfn = (unsigned)(offset >> ECAM_DEVFN_SHIFT) & 0xff;
    unsigned reg = (unsigned)offset & (PCI_CFG_SIZE - 1);
    if (reg + size > PCI_CFG_SIZE) {       /* crosses into the next function: not a config access */
        if (!write)
            memset(data, 0xff, size);
        return;
    }
    pthread_mutex_lock(&h->lock);
    config_access(h, bus, devfn, reg, data, size, write);
    pthread_mutex_unlock(&h->lock);
}

static void ecam_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    ecam_access(opaque, offset, data, size, false);
}

static void ecam_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    uint8_t buf[8];
    memcpy(buf, data, MIN(size, sizeof(buf)));
    ecam_access(opaque, offset, buf, MIN(size, sizeof(buf)), true);
}

static const struct bus_ops ecam_ops = { .read = ecam_read, .write = ecam_write };

/* Mechanism #1 (PCI Local Bus 3.0 section 3.2.2.3.2): only a dword access
 * to 0xCF8 reaches the address register; the data port forwards byte, word
 * and dword accesses at 0xCFC-0xCFF to the dword CONFIG_ADDRESS selects.
 * Config space above 0xFF is ECAM-only. */
static void cf8_access(struct pci_host *h, uint64_t offset, uint8_t *data, unsigned size, bool write)
{
    pthread_mutex_lock(&h->lock);
    if (offset < 4) {
        if (offset == 0 && size == 4) {
            if (write)
                memcpy(&h->config_addr, data, 4);
            else
                memcpy(data, &h->config_addr, 4);
        } else if (!write) {
            memset(data, 0xff, size);
        }
    } else {
        unsigned byte = (unsigned)offset - 4;
        unsigned n = MIN(size, 4 - byte);      /* nothing beyond 0xCFF */
        uint32_t a = h->config_addr;
        if (!write)
            memset(data, 0xff, size);
        if (a & CF8_ENABLE)
            config_access(h, CF8_BUS(a), CF8_DEVFN(a), CF8_REG(a) + byte, data, n, write);
    }
    pthread_mutex_unlock(&h->lock);
}

static void cf8_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
    cf8_access(opaque, offset, data, size, false);
}

static void cf8_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
    uint8_t buf[8];
    memcpy(buf, data, MIN(size, sizeof(buf)));
    cf8_access(opaque, offset, buf, MIN(size, sizeof(buf)), true);
}

static const struct bus_ops cf8_ops = { .read = cf8_read, .write = cf8_write };

static bool window_contains(const struct pci_window *w, uint64_t addr, uint64_t size)
{
    return w->size && addr >= w->base && size <= w->size && addr - w->base <= w->size - size;
}

bool pci_host_window_contains(const struct pci_host *h, enum pci_bar_type type, uint64_t addr, uint64_t size)
{
    switch (type) {
    case PCI_BAR_IO:
        return window_contains(&h->cfg.io, addr, size);
    case PCI_BAR_MEM32:
        return window_contains(&h->cfg.mmio32, addr, size);
    case PCI_BAR_MEM64:
        return window_contains(&h->cfg.mmio32, addr, size) || window_contains(&h->cfg.mmio64, addr, size);
    default:
        return false;
    }
}

void pci_host_lock(struct pci_host *h)
{
    pthread_mutex_lock(&h->lock);
}

void pci_host_unlock(struct pci_host *h)
{
    pthread_mutex_unlock(&h->lock);
}

void pci_host_set_ioeventfd_ops(struct pci_host *h, const struct pci_ioeventfd_ops *ops)
{
    pthread_mutex_lock(&h->lock);
    h->ioeventfd_ops = *ops;
    h->has_ioeventfd_ops = true;
    pthread_mutex_unlock(&h->lock);
}

const struct pci_ioeventfd_ops *pci_host_ioeventfd_ops(const struct pci_host *h)
{
    return h->has_ioeventfd_ops ? &h->ioeventfd_ops : NULL;
}

int pci_kvm_ioeventfd(void *opaque, bool pio, uint64_t addr, unsigned len, int fd, bool assign)
{
    struct kvm_ioeventfd req = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return ioctl((int)(intptr_t)opaque, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

struct bus *pci_host_bar_bus(struct pci_host *h, enum pci_bar_type type)
{
    return type == PCI_BAR_IO ? h->pio : h->mmio;
}

/* Bump allocation, naturally aligned, as a firmware would: 0 on success. */
static int alloc_from(const struct pci_window *w, uint64_t *cursor, uint64_t size, uint64_t *addr)
{
    uint64_t a = (*cursor + size - 1) & ~(size - 1);
    if (a < *cursor || !window_contains(w, a, size))
        return -ENOSPC;
    *addr = a;
    *cursor = a + size;
    return 0;
}

static int assign_bars(struct pci_host *h, struct pci_device *d)
{
    uint64_t m32 = h->next_mmio32, m64 = h->next_mmio64, io = h->next_io;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *b = &d->bar[i];
        uint64_t addr;
        int r;
        if (b->type == PCI_BAR_NONE)
            continue;
        if (b->type == PCI_BAR_IO)
            r = alloc_from(&h->cfg.io, &io, b->size, &addr);
        else if (b->type == PCI_BAR_MEM64 && h->cfg.mmio64.size)
            r = alloc_from(&h->cfg.mmio64, &m64, b->size, &addr);
        else
            r = alloc_from(&h->cfg.mmio32, &m32, b->size, &addr);
        if (r < 0)
            return r;
        unsigned reg = PCI_CFG_BAR0 + 4 * i;
        uint32_t flags = pci_cfg_get(d, reg, 4) & (b->type == PCI_BAR_IO ? 3u : 15u);
        pci_cfg_set(d, reg, (uint32_t)addr | flags, 4);
        if (b->type == PCI_BAR_MEM64)
            pci_cfg_set(d, reg + 4, (uint32_t)(addr >> 32), 4);
    }
    h->next_mmio32 = m32;
    h->next_mmio64 = m64;
    h->next_io = io;
    return 0;
}

int pci_host_add_device(struct pci_host *h, struct pci_device *d, int slot)
{
    return pci_host_plug_device(h, d, slot, true);
}

int pci_host_plug_device(struct pci_host *h, struct pci_device *d, int slot, bool assign)
{
    if (!d || d->host || slot == 0 || slot >= PCI_MAX_SLOTS)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    int ret = -EBUSY;
    if (slot < 0) {
        for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
            if (!h->slots[s]) {
                slot = (int)s;
                break;
            }
    }
    if (slot > 0 && !h->slots[slot]) {
        ret = assign ? assign_bars(h, d) : 0;
        if (ret == 0) {
            memcpy(d->cfg_reset, d->cfg, PCI_CFG_SIZE);
            d->host = h;
            d->devfn = (unsigned)slot << 3;
            h->slots[slot] = d;
            ret = (int)d->devfn;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

void pci_host_remove_device(struct pci_host *h, struct pci_device *d)
{
    pthread_mutex_lock(&h->lock);
    unsigned slot = d->devfn >> 3;
    if (d->host == h && slot < PCI_MAX_SLOTS && h->slots[slot] == d) {
        pci_cfg_set(d, PCI_CFG_COMMAND, 0, 2);
        pci_device_update_mappings(d);
        g_clear_pointer(&d->ioeventfds, g_free);
        d->nr_ioeventfds = 0;
        h->slots[slot] = NULL;
        d->host = NULL;
    }
    pthread_mutex_unlock(&h->lock);
}

uint32_t pci_host_slots_used(struct pci_host *h)
{
    uint32_t used = 0;
    pthread_mutex_lock(&h->lock);
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++)
        if (h->slots[s])
            used |= 1u << s;
    pthread_mutex_unlock(&h->lock);
    return used;
}

static void pci_host_reset(void *dev)
{
    struct pci_host *h = dev;
    pthread_mutex_lock(&h->lock);
    h->config_addr = 0;
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++)
        if (h->slots[s])
            pci_device_reset(h->slots[s]);
    pthread_mutex_unlock(&h->lock);
}

/* The config spaces of every function; the device models save their own
 * state (MSI-X table included) in sections of their own. */
static int pci_host_save(void *dev, struct state_writer *w)
{
    struct pci_host *h = dev;
    pthread_mutex_lock(&h->lock);
    state_begin_section(w, "pci-host", PCI_HOST_STATE_VERSION);
    state_put_u32(w, h->config_addr);
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        state_put_u8(w, h->slots[s] != NULL);
        if (h->slots[s])
            state_put_bytes(w, h->slots[s]->cfg, PCI_CFG_SIZE);
    }
    state_end_section(w);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static int pci_host_load(void *dev, struct state_reader *r)
{
    struct pci_host *h = dev;
    uint32_t version, addr = 0;
    if (state_open_section(r, "pci-host", PCI_HOST_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    g_autofree uint8_t *cfg = g_malloc0((size_t)PCI_MAX_SLOTS * PCI_CFG_SIZE);
    bool present[PCI_MAX_SLOTS] = { false };
    int bad = state_get_u32(r, &addr);
    for (unsigned s = 0; s < PCI_MAX_SLOTS && !bad; s++) {
        uint8_t p = 0;
        bad = state_get_u8(r, &p);
        present[s] = p;
        if (!bad && p)
            bad = state_get_bytes(r, cfg + (size_t)s * PCI_CFG_SIZE, PCI_CFG_SIZE);
    }
    if (bad || state_close_section(r, NULL) < 0)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    int ret = 0;
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++)
        if (present[s] != (h->slots[s] != NULL))
            ret = -EINVAL;      /* a different machine: apply nothing */
    if (ret == 0) {
        h->config_addr = addr;
        for (unsigned s = 0; s < PCI_MAX_SLOTS; s++)
            if (h->slots[s]) {
                memcpy(h->slots[s]->cfg, cfg + (size_t)s * PCI_CFG_SIZE, PCI_CFG_SIZE);
                pci_device_update_mappings(h->slots[s]);
                if (h->slots[s]->msix)
                    msix_control_written(h->slots[s]->msix);
            }
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

static void pci_host_destroy(void *dev)
{
    struct pci_host *h = dev;
    for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
        if (h->slots[s])
            pci_host_remove_device(h, h->slots[s]);
    if (h->ecam_registered)
        bus_unregister(h->mmio, h->cfg.ecam.base);
    if (h->cf8_registered)
        bus_unregister(h->pio, PCI_CONFIG_ADDR_PORT);
    pthread_mutex_destroy(&h->lock);
    g_free(h);
}

static const struct device_ops pci_host_device_ops = {
    .type = "pci-host",
    .reset = pci_host_reset,
    .save = pci_host_save,
    .load = pci_host_load,
    .destroy = pci_host_destroy,
};

struct pci_host *pci_host_create(struct bus *pio, struct bus *mmio, const struct pci_host_config *cfg)
{
    if (cfg->ecam.size < (1ull << ECAM_BUS_SHIFT))
        return NULL;
    struct pci_host *h = g_new0(struct pci_host, 1);
    h->pio = pio;
    h->mmio = mmio;
    h->cfg = *cfg;
    h->next_mmio32 = cfg->mmio32.base;
    h->next_mmio64 = cfg->mmio64.base;
    h->next_io = cfg->io.base;
    pthread_mutex_init(&h->lock, NULL);

    pci_device_init(&h->bridge, "host-bridge", NULL, NULL, PCI_HOST_VENDOR_ID, PCI_HOST_DEVICE_ID,
                    PCI_HOST_CLASS, 0);
    memcpy(h->bridge.cfg_reset, h->bridge.cfg, PCI_CFG_SIZE);
    h->bridge.host = h;
    h->slots[0] = &h->bridge;

    h->ecam_registered = bus_register(mmio, cfg->ecam.base, cfg->ecam.size, &ecam_ops, h, "pci-ecam") == 0;
    h->cf8_registered = bus_register(pio, PCI_CONFIG_ADDR_PORT, 8, &cf8_ops, h, "pci-cf8") == 0;
    if (!h->ecam_registered || !h->cf8_registered) {
        pci_host_destroy(h);
        return NULL;
    }
    return h;
}

struct device pci_host_device(struct pci_host *h)
{
    if (!h)
        return (struct device){ 0 };
    return (struct device){ .id = "pci-host", .ops = &pci_host_device_ops, .dev = h };
}
