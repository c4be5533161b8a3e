#include "virtio_pci.h"

#define WAIT_CYCLES (1ull << 34)    /* "never answers": seconds even on a fast TSC */

static inline void mb(void)
{
    /* A full fence without SSE2's mfence. */
    __asm__ volatile("lock; addl $0, (%%rsp)" ::: "memory");
}

static inline void barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

static uint8_t rd8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static uint16_t rd16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static uint32_t rd32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static void wr8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static void wr16(uint64_t a, uint16_t v) { *(volatile uint16_t *)(uintptr_t)a = v; }
static void wr32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }

/* The 64-bit queue addresses in two 32-bit halves, as 4.1.3.1 allows. */
static void wr64(uint64_t a, uint64_t v)
{
    wr32(a, (uint32_t)v);
    wr32(a + 4, (uint32_t)(v >> 32));
}

bool virtio_open(struct virtio_dev *d, uint16_t type)
{
    int devfn = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE(type));
    if (devfn < 0) {
        memset(d, 0, sizeof(*d));
        diag("no virtio device of type %u (0x1af4:0x%x) on bus 0", type, VIRTIO_PCI_DEVICE(type));
        return false;
    }
    return virtio_open_at(d, (unsigned)devfn);
}

bool virtio_open_at(struct virtio_dev *d, unsigned devfn)
{
    memset(d, 0, sizeof(*d));
    d->devfn = devfn;
    for (unsigned cap = pci_find_cap(d->devfn, PCI_CAP_VENDOR, 0); cap;
         cap = pci_find_cap(d->devfn, PCI_CAP_VENDOR, cap)) {
        uint8_t cfg_type = pci_read8(d->devfn, cap + 3), bar = pci_read8(d->devfn, cap + 4);
        uint32_t off = pci_read32(d->devfn, cap + 8), len = pci_read32(d->devfn, cap + 12);
        if (cfg_type == VIRTIO_CAP_PCI_CFG) {
            if (!d->pcicfg_cap)
                d->pcicfg_cap = cap;
            continue;
        }
        if (bar > 5)
            continue;
        uint64_t base = pci_bar(d->devfn, bar);
        if (!base)
            continue;
        /* 4.1.4.1: the first capability of each type wins. */
        switch (cfg_type) {
        case VIRTIO_CAP_COMMON:
            if (!d->common)
                d->common = base + off;
            break;
        case VIRTIO_CAP_NOTIFY:
            if (!d->notify) {
                d->notify = base + off;
                d->notify_mult = pci_read32(d->devfn, cap + 16);
            }
            break;
        case VIRTIO_CAP_ISR:
            if (!d->isr)
                d->isr = base + off;
            break;
        case VIRTIO_CAP_DEVICE:
            if (!d->device) {
                d->device = base + off;
                d->device_len = len;
            }
            break;
        }
    }
    d->msix_cap = pci_find_cap(d->devfn, PCI_CAP_MSIX, 0);
    if (d->msix_cap) {
        uint32_t tbl = pci_read32(d->devfn, d->msix_cap + 4);
        d->msix_size = (pci_read16(d->devfn, d->msix_cap + 2) & 0x7ff) + 1;
        d->msix_table = pci_bar(d->devfn, tbl & 7) + (tbl & ~7u);
    }
    if (!d->common || !d->notify || !d->isr) {
        diag("virtio device at 00:%02x.%u lacks a capability: common %lx notify %lx isr %lx", d->devfn >> 3,
             d->devfn & 7, d->common, d->notify, d->isr);
        return false;
    }
    return true;
}

uint8_t virtio_status(struct virtio_dev *d)
{
    return rd8(d->common + VC_STATUS);
}

bool virtio_reset(struct virtio_dev *d)
{
    wr8(d->common + VC_STATUS, 0);
    uint64_t t0 = rdtsc();
    while (rd8(d->common + VC_STATUS) != 0)
        if (rdtsc() - t0 > WAIT_CYCLES)
            return false;
    return true;
}

uint64_t virtio_device_features(struct virtio_dev *d)
{
    wr32(d->common + VC_DFSELECT, 0);
    uint64_t lo = rd32(d->common + VC_DF);
    wr32(d->common + VC_DFSELECT, 1);
    return (uint64_t)rd32(d->common + VC_DF) << 32 | lo;
}

bool virtio_negotiate(struct virtio_dev *d, uint64_t features)
{
    wr8(d->common + VC_STATUS, VIRTIO_ACKNOWLEDGE);
    wr8(d->common + VC_STATUS, VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER);
    wr32(d->common + VC_GFSELECT, 0);
    wr32(d->common + VC_GF, (uint32_t)features);
    wr32(d->common + VC_GFSELECT, 1);
    wr32(d->common + VC_GF, (uint32_t)(features >> 32));
    wr8(d->common + VC_STATUS, VIRTIO_ACKNOWLEDGE | VIRTIO_DRIVER | VIRTIO_FEATURES_OK);
    return rd8(d->common + VC_STATUS) & VIRTIO_FEATURES_OK;
}

void virtio_driver_ok(struct virtio_dev *d)
{
    wr8(d->common + VC_STATUS, rd8(d->common + VC_STATUS) | VIRTIO_DRIVER_OK);
}

uint16_t virtio_num_queues(struct virtio_dev *d)
{
    return rd16(d->common + VC_NUMQ);
}

uint8_t virtio_isr(struct virtio_dev *d)
{
    return rd8(d->isr);
}

void virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len)
{
    uint8_t *out = buf;
    uint8_t gen;
    do {
        gen = rd8(d->common + VC_CFGGEN);
        /* 4.1.3.1: fields at their width, 64-bit ones as two 32-bit reads;
         * with off and len on field boundaries, the widest aligned access
         * that fits is that. */
        for (unsigned i = 0; i < len;) {
            unsigned a = off + i, n = (a % 4 == 0 && len - i >= 4) ? 4 : (a % 2 == 0 && len - i >= 2) ? 2 : 1;
            uint32_t v = 0;
            if (a + n <= d->device_len)
                v = n == 4 ? rd32(d->device + a) : n == 2 ? rd16(d->device + a) : rd8(d->device + a);
            memcpy(out + i, &v, n);
            i += n;
        }
    } while (rd8(d->common + VC_CFGGEN) != gen);
}

bool virtio_msix_route(struct virtio_dev *d, unsigned entry, uint8_t vector)
{
    if (!d->msix_cap || entry >= d->msix_size)
        return false;
    uint64_t e = d->msix_table + 16ull * entry;
    wr32(e + 0, 0xfee00000u | (uint32_t)apic_id() << 12);
    wr32(e + 4, 0);
    wr32(e + 8, vector);
    wr32(e + 12, 0);
    return true;
}

void virtio_msix_enable(struct virtio_dev *d, bool on)
{
    if (d->msix_cap)
        pci_write16(d->devfn, d->msix_cap + 2, on ? 0x8000 : 0);
}

uint16_t virtio_set_config_vector(struct virtio_dev *d, uint16_t vector)
{
    wr16(d->common + VC_MSIX, vector);
    return rd16(d->common + VC_MSIX);
}

static unsigned used_off(uint16_t size)
{
    return (16u * size + 6 + 2u * size + 4095) & ~4095u;
}

unsigned virtq_mem_size(uint16_t size)
{
    return used_off(size) + ((6 + 8u * size + 4095) & ~4095u);
}

bool virtq_setup(struct virtq *q, struct virtio_dev *d, unsigned index, uint16_t size, void *mem, uint16_t vector,
                 uint16_t *vector_out)
{
    memset(q, 0, sizeof(*q));
    wr16(d->common + VC_Q_SELECT, (uint16_t)index);
    uint16_t max = rd16(d->common + VC_Q_SIZE);
    if (!max || (max & (max - 1)))
        return false;
    if (!size || size > max)
        size = max;
    q->dev = d;
    q->index = index;
    q->size = size;
    memset(mem, 0, virtq_mem_size(size));
    q->desc = mem;
    q->avail = (volatile uint16_t *)((uint8_t *)mem + 16u * size);
    q->used = (volatile uint8_t *)mem + used_off(size);
    for (uint16_t i = 0; i < size; i++)
        q->desc[i].next = (uint16_t)(i + 1);
    q->num_free = size;
    q->notify_addr = d->notify + (uint64_t)rd16(d->common + VC_Q_NOFF) * d->notify_mult;
    wr16(d->common + VC_Q_SIZE, size);
    wr64(d->common + VC_Q_DESC, (uintptr_t)q->desc);
    wr64(d->common + VC_Q_AVAIL, (uintptr_t)q->avail);
    wr64(d->common + VC_Q_USED, (uintptr_t)q->used);
    wr16(d->common + VC_Q_MSIX, vector);
    if (vector_out)
        *vector_out = rd16(d->common + VC_Q_MSIX);
    wr16(d->common + VC_Q_ENABLE, 1);
    return rd16(d->common + VC_Q_ENABLE) == 1;
}

int virtq_add(struct virtq *q, const struct virtq_sg *sg, unsigned n_out, unsigned n_in)
{
    unsigned n = n_out + n_in;
    if (!n || n > q->num_free)
        return -1;
    uint16_t head = q->free_head, i = head, last = head;
    for (unsigned k = 0; k < n; k++) {
        struct virtq_desc *dsc = &q->desc[i];
        dsc->addr = (uintptr_t)sg[k].addr;
        dsc->len = sg[k].len;
        dsc->flags = (uint16_t)((k >= n_out ? VIRTQ_F_WRITE : 0) | (k + 1 < n ? VIRTQ_F_NEXT : 0));
        last = i;
        i = dsc->next;
    }
    q->free_head = q->desc[last].next;
    q->num_free = (uint16_t)(q->num_free - n);
    q->avail[2 + q->avail_idx % q->size] = head;
    barrier();      /* x86 keeps stores in order; the ring entry before the index */
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
    return head;
}

void virtq_kick(struct virtq *q)
{
    mb();           /* the new avail idx is visible before the device may look at used flags */
    if (!(*(volatile uint16_t *)q->used & 1))       /* VIRTQ_USED_F_NO_NOTIFY */
        wr16(q->notify_addr, (uint16_t)q->index);
}

bool virtq_get_used(struct virtq *q, uint16_t *head, uint32_t *len)
{
    uint16_t idx = *(volatile uint16_t *)(q->used + 2);
    if (idx == q->last_used)
        return false;
    barrier();
    volatile uint8_t *e = q->used + 4 + 8u * (q->last_used % q->size);
    uint32_t id = *(volatile uint32_t *)e, l = *(volatile uint32_t *)(e + 4);
    q->last_used++;
    if (id >= q->size)
        return false;
    uint16_t i = (uint16_t)id, n = 1;
    while ((q->desc[i].flags & VIRTQ_F_NEXT) && n < q->size) {
        i = q->desc[i].next;
        n++;
    }
    q->desc[i].next = q->free_head;
    q->free_head = (uint16_t)id;
    q->num_free = (uint16_t)(q->num_free + n);
    if (head)
        *head = (uint16_t)id;
    if (len)
        *len = l;
    return true;
}

bool virtq_wait_used(struct virtq *q, uint16_t *head, uint32_t *len)
{
    uint64_t t0 = rdtsc();
    while (!virtq_get_used(q, head, len)) {
        if (rdtsc() - t0 > WAIT_CYCLES)
            return false;
        cpu_relax();
    }
    return true;
}
