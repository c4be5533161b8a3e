#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/log.h"
#include "vmm/state.h"

#define VIRTIO_PCI_STATE_VERSION 1

/* Vendor capability layout (4.1.4): struct virtio_pci_cap, then the
 * notify multiplier or the PCI_CFG data window. */
#define CAP_LEN         2
#define CAP_CFG_TYPE    3
#define CAP_BAR         4
#define CAP_ID          5
#define CAP_OFFSET      8
#define CAP_LENGTH      12
#define CAP_EXTRA       16      /* notify_off_multiplier / pci_cfg_data */
#define CAP_SIZE        16
#define CAP_SIZE_EXTRA  20

struct virtio_pci {
    struct pci_device pci;
    struct virtio_device *vdev;
    struct msix *msix;
    char *id;
    void (*release)(struct virtio_device *vdev);
    unsigned nvec;              /* MSI-X vectors: config + one per queue */
    int *irqfd;                 /* per vector, -1 until assigned; atomic */
    int *kick_fd;               /* per queue, -1: none */
    unsigned cfg_cap;           /* offset of the PCI_CFG capability */

    /* The driver's select registers; vCPU threads serialise on lock. */
    GMutex lock;
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    bool bad_access_logged;     /* atomic */
    bool slow_kick_logged;      /* atomic */
    bool irqfd_failed_logged;
};

static void bad_access(struct virtio_pci *vp, const char *what, uint64_t off, unsigned size, bool write)
{
    if (__atomic_exchange_n(&vp->bad_access_logged, true, __ATOMIC_RELAXED))
        return;
    log_warn("%s: the guest driver made a bad %u-byte %s of the %s at BAR0+0x%llx; ignored (logged once)",
             vp->id, size, write ? "write" : "read", what, (unsigned long long)off);
}

/* ---- interrupts ---- */

/* The vector's irqfd, created on first assignment so that raising it later
 * is one eventfd write. Without routing (tests) vectors go by msix_notify. */
static void vector_assigned(struct virtio_pci *vp, uint16_t vector)
{
    if (vector >= vp->nvec || __atomic_load_n(&vp->irqfd[vector], __ATOMIC_ACQUIRE) >= 0)
        return;
    int fd = msix_vector_irqfd(vp->msix, vector);
    if (fd >= 0) {
        __atomic_store_n(&vp->irqfd[vector], fd, __ATOMIC_RELEASE);
    } else if (fd != -ENODEV && !vp->irqfd_failed_logged) {
        vp->irqfd_failed_logged = true;
        log_warn("%s: no irqfd for MSI-X vector %u (%s); its interrupts go through vmm", vp->id, vector,
                 g_strerror(-fd));
    }
}

static void transport_interrupt(void *opaque, uint16_t vector)
{
    struct virtio_pci *vp = opaque;
    /* VIRTIO_NO_VECTOR (or a vector the table does not have): there is no
     * INTx line, so the ISR bit the core set is all the driver gets. */
    if (vector >= vp->nvec)
        return;
    int fd = __atomic_load_n(&vp->irqfd[vector], __ATOMIC_ACQUIRE);
    uint64_t one = 1;
    if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one))
        msix_notify(vp->msix, vector);
}

static uint16_t checked_vector(struct virtio_pci *vp, uint16_t v)
{
    /* 4.1.5.1.2: a vector the function cannot map reads back as NO_VECTOR. */
    return v < vp->nvec ? v : VIRTIO_NO_VECTOR;
}

/* ---- common configuration (4.1.4.3) ---- */

struct common_field {
    uint8_t off;
    uint8_t width;
};

static const struct common_field common_fields[] = {
    { VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },       { VIRTIO_PCI_COMMON_GFSELECT, 4 },
    { VIRTIO_PCI_COMMON_GF, 4 },       { VIRTIO_PCI_COMMON_MSIX, 2 },     { VIRTIO_PCI_COMMON_NUMQ, 2 },
    { VIRTIO_PCI_COMMON_STATUS, 1 },   { VIRTIO_PCI_COMMON_CFGGEN, 1 },   { VIRTIO_PCI_COMMON_Q_SELECT, 2 },
    { VIRTIO_PCI_COMMON_Q_SIZE, 2 },   { VIRTIO_PCI_COMMON_Q_MSIX, 2 },   { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
    { VIRTIO_PCI_COMMON_Q_NOFF, 2 },   { VIRTIO_PCI_COMMON_Q_DESC, 8 },   { VIRTIO_PCI_COMMON_Q_AVAIL, 8 },
    { VIRTIO_PCI_COMMON_Q_USED, 8 },   { VIRTIO_PCI_COMMON_Q_NDATA, 2 },  { VIRTIO_PCI_COMMON_Q_RESET, 2 },
};

/* The field [off, off + size) is, or -1 for an access that is not one
 * field at its natural width (64-bit fields: whole, or either 32-bit half). */
static int common_lookup(uint64_t off, unsigned size)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(common_fields); i++) {
        const struct common_field *f = &common_fields[i];
        if (off == f->off && size == f->width)
            return f->off;
        if (f->width == 8 && size == 4 && (off == f->off || off == f->off + 4u))
            return f->off;
    }
    return -1;
}

/* Lock held. Reads the 64-bit queue address field `field`. */
static uint64_t queue_addr_get(struct virtio_pci *vp, int field)
{
    struct virtio_device *vdev = vp->vdev;
    unsigned q = vp->queue_select;
    return field == VIRTIO_PCI_COMMON_Q_DESC    ? virtio_queue_get_desc(vdev, q)
           : field == VIRTIO_PCI_COMMON_Q_AVAIL ? virtio_queue_get_avail(vdev, q)
                                                : virtio_queue_get_used(vdev, q);
}

static void queue_addr_set(struct virtio_pci *vp, int field, uint64_t v)
{
    struct virtio_device *vdev = vp->vdev;
    unsigned q = vp->queue_select;
    if (field == VIRTIO_PCI_COMMON_Q_DESC)
        virtio_queue_set_desc(vdev, q, v);
    else if (field == VIRTIO_PCI_COMMON_Q_AVAIL)
        virtio_queue_set_avail(vdev, q, v);
    else
        virtio_queue_set_used(vdev, q, v);
}

static uint64_t common_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
    int field = common_lookup(off, size);
    if (field < 0) {
        bad_access(vp, "common configuration", VIRTIO_PCI_COMMON_OFF + off, size, false);
        return 0;
    }
    struct virtio_device *vdev = vp->vdev;
    g_mutex_lock(&vp->lock);
    unsigned q = vp->queue_select;
    uint64_t v = 0;
    switch (field) {
    case VIRTIO_PCI_COMMON_DFSELECT: v = vp->dfselect; break;
    case VIRTIO_PCI_COMMON_DF: v = virtio_get_device_features(vdev, vp->dfselect); break;
    case VIRTIO_PCI_COMMON_GFSELECT: v = vp->gfselect; break;
    case VIRTIO_PCI_COMMON_GF: v = virtio_get_driver_features(vdev, vp->gfselect); break;
    case VIRTIO_PCI_COMMON_MSIX: v = virtio_get_config_vector(vdev); break;
    case VIRTIO_PCI_COMMON_NUMQ: v = vdev->num_queues; break;
    case VIRTIO_PCI_COMMON_STATUS: v = virtio_get_status(vdev); break;
    case VIRTIO_PCI_COMMON_CFGGEN: v = (uint8_t)virtio_config_generation(vdev); break;
    case VIRTIO_PCI_COMMON_Q_SELECT: v = q; break;
    /* A queue that does not exist reads as size 0 (4.1.4.3.1). */
    case VIRTIO_PCI_COMMON_Q_SIZE: v = virtio_queue_get_max_size(vdev, q) ? virtio_queue_get_size(vdev, q) : 0; break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        v = virtio_queue_get_max_size(vdev, q) ? virtio_queue_get_vector(vdev, q) : VIRTIO_NO_VECTOR;
        break;
    case VIRTIO_PCI_COMMON_Q_ENABLE: v = virtio_queue_get_enable(vdev, q); break;
    case VIRTIO_PCI_COMMON_Q_NOFF: v = virtio_queue_get_max_size(vdev, q) ? q : 0; break;
    case VIRTIO_PCI_COMMON_Q_DESC:
    case VIRTIO_PCI_COMMON_Q_AVAIL:
    case VIRTIO_PCI_COMMON_Q_USED:
        v = queue_addr_get(vp, field);
        if (size == 4)
            v = (uint32_t)(v >> (off == (uint64_t)field ? 0 : 32));
        break;
    case VIRTIO_PCI_COMMON_Q_NDATA: v = 0; break;   /* VIRTIO_F_NOTIF_CONFIG_DATA is not offered */
    case VIRTIO_PCI_COMMON_Q_RESET: v = virtio_queue_get_reset(vdev, q); break;
    }
    g_mutex_unlock(&vp->lock);
    return v;
}

static void common_write(struct virtio_pci *vp, uint64_t off, unsigned size, uint64_t v)
{
    int field = common_lookup(off, size);
    if (field < 0) {
        bad_access(vp, "common configuration", VIRTIO_PCI_COMMON_OFF + off, size, true);
        return;
    }
    struct virtio_device *vdev = vp->vdev;
    g_mutex_lock(&vp->lock);
    unsigned q = vp->queue_select;
    switch (field) {
    case VIRTIO_PCI_COMMON_DFSELECT: vp->dfselect = (uint32_t)v; break;
    case VIRTIO_PCI_COMMON_GFSELECT: vp->gfselect = (uint32_t)v; break;
    case VIRTIO_PCI_COMMON_GF: virtio_set_driver_features(vdev, vp->gfselect, (uint32_t)v); break;
    case VIRTIO_PCI_COMMON_MSIX: {
        uint16_t vec = checked_vector(vp, (uint16_t)v);
        vector_assigned(vp, vec);
        virtio_set_config_vector(vdev, vec);
        break;
    }
    case VIRTIO_PCI_COMMON_STATUS:
        if ((uint8_t)v == 0)
            vp->dfselect = vp->gfselect = vp->queue_select = 0;
        virtio_set_status(vdev, (uint8_t)v);
        break;
    case VIRTIO_PCI_COMMON_Q_SELECT: vp->queue_select = (uint16_t)v; break;
    case VIRTIO_PCI_COMMON_Q_SIZE: virtio_queue_set_size(vdev, q, (uint16_t)v); break;
    case VIRTIO_PCI_COMMON_Q_MSIX: {
        uint16_t vec = checked_vector(vp, (uint16_t)v);
        vector_assigned(vp, vec);
        virtio_queue_set_vector(vdev, q, vec);
        break;
    }
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        /* 4.1.4.3.2: the driver never writes 0; a queue stops by RING_RESET. */
        if (v == 1)
            virtio_queue_enable(vdev, q);
        break;
    case VIRTIO_PCI_COMMON_Q_DESC:
    case VIRTIO_PCI_COMMON_Q_AVAIL:
    case VIRTIO_PCI_COMMON_Q_USED:
        if (size == 4) {
            uint64_t cur = queue_addr_get(vp, field);
            v = off == (uint64_t)field ? (cur & ~0xffffffffull) | (uint32_t)v
                                       : (cur & 0xffffffffull) | (v << 32);
        }
        queue_addr_set(vp, field, v);
        break;
    case VIRTIO_PCI_COMMON_Q_RESET:
        if (v == 1)
            virtio_queue_reset(vdev, q);
        break;
    default:
        break;      /* read-only: device_feature, num_queues, config_generation, notify_off/data */
    }
    g_mutex_unlock(&vp->lock);
}

/* ---- BAR0 ---- */

static bool in_region(uint64_t off, unsigned size, uint64_t start, uint64_t len)
{
    return off >= start && off - start < len && size <= len - (off - start);
}

static uint64_t notify_len(const struct virtio_pci *vp)
{
    return (uint64_t)vp->vdev->num_queues * VIRTIO_PCI_NOTIFY_MULT;
}

static void bar_read(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size)
{
    struct virtio_pci *vp = d->opaque;
    uint64_t v = 0;
    if (in_region(off, size, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_REGION_SIZE)) {
        v = common_read(vp, off - VIRTIO_PCI_COMMON_OFF, size);
    } else if (in_region(off, size, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_REGION_SIZE)) {
        if (off == VIRTIO_PCI_ISR_OFF && size == 1)
            v = virtio_read_isr(vp->vdev);
        else
            bad_access(vp, "ISR status", off, size, false);
    } else if (in_region(off, size, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_REGION_SIZE)) {
        /* 4.1.3.1: 8-, 16- and 32-bit aligned accesses only. */
        if (size <= 4 && (off & (size - 1)) == 0)
            virtio_config_read(vp->vdev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), &v, size);
        else
            bad_access(vp, "device configuration", off, size, false);
    } else if (!in_region(off, size, VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_REGION_SIZE)) {
        bad_access(vp, "BAR", off, size, false);
    }
    memcpy(data, &v, size);
}

static void notify_write(struct virtio_pci *vp, uint64_t off, unsigned size)
{
    uint64_t rel = off - VIRTIO_PCI_NOTIFY_OFF;
    /* The queue is the one whose address was written (the value is its
     * index again, or with NOTIFICATION_DATA, which is not offered, more). */
    if (rel % VIRTIO_PCI_NOTIFY_MULT || rel >= notify_len(vp) || (size != 2 && size != 4)) {
        bad_access(vp, "queue notify area", off, size, true);
        return;
    }
    unsigned q = (unsigned)(rel / VIRTIO_PCI_NOTIFY_MULT);
    /* With an ioeventfd bound here, KVM should have taken this write. */
    if (vp->kick_fd[q] >= 0 && !__atomic_exchange_n(&vp->slow_kick_logged, true, __ATOMIC_RELAXED))
        log_info("%s: a queue %u kick reached vmm instead of its ioeventfd; kicks work, through a vCPU exit",
                 vp->id, q);
    virtio_queue_notify(vp->vdev, q);
}

static void bar_write(struct pci_device *d, unsigned bar, uint64_t off, const void *data, unsigned size)
{
    struct virtio_pci *vp = d->opaque;
    uint64_t v = 0;
    memcpy(&v, data, MIN(size, sizeof(v)));
    if (in_region(off, size, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_REGION_SIZE)) {
        common_write(vp, off - VIRTIO_PCI_COMMON_OFF, size, v);
    } else if (in_region(off, size, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_REGION_SIZE)) {
        if (size <= 4 && (off & (size - 1)) == 0)
            virtio_config_write(vp->vdev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), &v, size);
        else
            bad_access(vp, "device configuration", off, size, true);
    } else if (in_region(off, size, VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_REGION_SIZE)) {
        notify_write(vp, off, size);
    } else {
        /* The ISR is read-only; the rest of the BAR holds nothing. */
        bad_access(vp, "BAR", off, size, true);
    }
}

/* ---- PCI configuration access capability (4.1.4.9) ---- */

/* The BAR access the window's bar/offset/length select, or false when they
 * select none the device MUST carry out (4.1.4.9.1: a length of 1, 2 or 4,
 * an offset that is a multiple of it, inside one of our BARs). */
static bool cfg_window(struct virtio_pci *vp, uint64_t *off, unsigned *len)
{
    struct pci_device *d = &vp->pci;
    unsigned bar = pci_cfg_get(d, vp->cfg_cap + CAP_BAR, 1);
    uint32_t o = pci_cfg_get(d, vp->cfg_cap + CAP_OFFSET, 4), l = pci_cfg_get(d, vp->cfg_cap + CAP_LENGTH, 4);
    if (bar != VIRTIO_PCI_BAR || (l != 1 && l != 2 && l != 4) || o % l || o >= d->bar[bar].size ||
        l > d->bar[bar].size - o)
        return false;
    *off = o;
    *len = l;
    return true;
}

static bool overlaps(unsigned off, unsigned size, unsigned start, unsigned len)
{
    return off < start + len && start < off + size;
}

static uint32_t cfg_read(struct pci_device *d, unsigned off, unsigned size, uint32_t val)
{
    struct virtio_pci *vp = d->opaque;
    unsigned data = vp->cfg_cap + CAP_EXTRA;
    uint64_t boff;
    unsigned len;
    if (!overlaps(off, size, data, 4) || !cfg_window(vp, &boff, &len))
        return val;
    uint8_t buf[4] = { 0 };
    if (!msix_bar_read(vp->msix, VIRTIO_PCI_BAR, boff, buf, len))
        bar_read(d, VIRTIO_PCI_BAR, boff, buf, len);
    for (unsigned i = 0; i < len; i++)
        pci_cfg_set(d, data + i, buf[i], 1);
    return pci_cfg_get(d, off, size);
}

static void cfg_write(struct pci_device *d, unsigned off, unsigned size, uint32_t val)
{
    struct virtio_pci *vp = d->opaque;
    unsigned data = vp->cfg_cap + CAP_EXTRA;
    uint64_t boff;
    unsigned len;
    if (!overlaps(off, size, data, 4) || !cfg_window(vp, &boff, &len))
        return;
    uint8_t buf[4];
    for (unsigned i = 0; i < 4; i++)
        buf[i] = (uint8_t)pci_cfg_get(d, data + i, 1);
    if (!msix_bar_write(vp->msix, VIRTIO_PCI_BAR, boff, buf, len))
        bar_write(d, VIRTIO_PCI_BAR, boff, buf, len);
}

/* The machine reset (host bridge): the function is back at power-on, and
 * so is the device. */
static void function_reset(struct pci_device *d)
{
    struct virtio_pci *vp = d->opaque;
    g_mutex_lock(&vp->lock);
    vp->dfselect = vp->gfselect = vp->queue_select = 0;
    g_mutex_unlock(&vp->lock);
    virtio_set_status(vp->vdev, 0);
}

static const struct pci_device_ops virtio_pci_ops = {
    .bar_read = bar_read,
    .bar_write = bar_write,
    .config_read = cfg_read,
    .config_write = cfg_write,
    .reset = function_reset,
};

/* ---- creation ---- */

static uint32_t class_of(uint16_t device_id)
{
    switch (device_id) {
    case VIRTIO_ID_NET: return 0x020000;        /* network, ethernet */
    case VIRTIO_ID_BLOCK: return 0x010000;      /* mass storage, SCSI */
    case VIRTIO_ID_CONSOLE: return 0x078000;    /* communication, other */
    default: return 0xff0000;                   /* unassigned */
    }
}

static int add_vendor_cap(struct pci_device *d, uint8_t type, uint32_t off, uint32_t len, unsigned size)
{
    int cap = pci_device_add_cap(d, PCI_CAP_ID_VENDOR, size);
    if (cap < 0)
        return cap;
    pci_cfg_set(d, (unsigned)cap + CAP_LEN, size, 1);
    pci_cfg_set(d, (unsigned)cap + CAP_CFG_TYPE, type, 1);
    pci_cfg_set(d, (unsigned)cap + CAP_BAR, VIRTIO_PCI_BAR, 1);
    pci_cfg_set(d, (unsigned)cap + CAP_OFFSET, off, 4);
    pci_cfg_set(d, (unsigned)cap + CAP_LENGTH, len, 4);
    return cap;
}

static uint64_t round_page(uint64_t v)
{
    return (v + VIRTIO_PCI_REGION_SIZE - 1) & ~(uint64_t)(VIRTIO_PCI_REGION_SIZE - 1);
}

static int build_function(struct virtio_pci *vp)
{
    struct virtio_device *vdev = vp->vdev;
    struct pci_device *d = &vp->pci;
    pci_device_init(d, vp->id, &virtio_pci_ops, vp, VIRTIO_PCI_VENDOR_ID,
                    VIRTIO_PCI_DEVICE_ID_BASE + vdev->device_id, class_of(vdev->device_id), VIRTIO_PCI_REVISION);
    pci_device_set_subsystem(d, VIRTIO_PCI_VENDOR_ID, vdev->device_id);

    uint64_t table_len = round_page((uint64_t)vp->nvec * MSIX_ENTRY_SIZE);
    uint64_t pba_off = VIRTIO_PCI_MSIX_OFF + table_len;
    uint64_t end = pba_off + round_page((vp->nvec + 63) / 64 * 8);
    uint64_t bar_size = 1;
    while (bar_size < end)
        bar_size <<= 1;
    if (pci_device_add_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM32, false, bar_size) < 0)
        return -EINVAL;
    if (add_vendor_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN, CAP_SIZE) < 0 ||
        add_vendor_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, CAP_SIZE) < 0)
        return -ENOSPC;
    int notify = add_vendor_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, (uint32_t)notify_len(vp),
                                CAP_SIZE_EXTRA);
    if (notify < 0)
        return -ENOSPC;
    pci_cfg_set(d, (unsigned)notify + CAP_EXTRA, VIRTIO_PCI_NOTIFY_MULT, 4);
    /* 4.1.4.6: only a device with a device-specific configuration has one. */
    if (vdev->config_size &&
        add_vendor_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, vdev->config_size, CAP_SIZE) < 0)
        return -ENOSPC;
    int cfg = add_vendor_cap(d, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, CAP_SIZE_EXTRA);
    if (cfg < 0)
        return -ENOSPC;
    vp->cfg_cap = (unsigned)cfg;
    pci_cfg_set_wmask(d, vp->cfg_cap + CAP_BAR, 0xff, 1);
    pci_cfg_set_wmask(d, vp->cfg_cap + CAP_OFFSET, 0xffffffffu, 4);
    pci_cfg_set_wmask(d, vp->cfg_cap + CAP_LENGTH, 0xffffffffu, 4);
    pci_cfg_set_wmask(d, vp->cfg_cap + CAP_EXTRA, 0xffffffffu, 4);
    return 0;
}

/* One eventfd per queue notify address, watched by the device's loop. */
static void bind_kicks(struct virtio_pci *vp)
{
    struct virtio_device *vdev = vp->vdev;
    for (unsigned q = 0; q < vdev->num_queues && vdev->loop; q++) {
        if (!virtio_queue_get_max_size(vdev, q))
            continue;
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            break;
        if (virtio_queue_set_kick_fd(vdev, q, fd) < 0) {
            close(fd);
            continue;
        }
        /* Length 0: any width the driver writes (KVM_CAP_IOEVENTFD_ANY_LENGTH). */
        if (pci_device_add_ioeventfd(&vp->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULT,
                                     0, fd) < 0) {
            virtio_queue_set_kick_fd(vdev, q, -1);
            close(fd);
            continue;
        }
        vp->kick_fd[q] = fd;
    }
}

static void free_transport(struct virtio_pci *vp)
{
    struct virtio_device *vdev = vp->vdev;
    for (unsigned q = 0; q < vdev->num_queues; q++)
        if (vp->kick_fd[q] >= 0)
            virtio_queue_set_kick_fd(vdev, q, -1);
    if (vp->pci.host)
        pci_host_remove_device(vp->pci.host, &vp->pci);
    for (unsigned q = 0; q < vdev->num_queues; q++)
        if (vp->kick_fd[q] >= 0)
            close(vp->kick_fd[q]);
    g_free(vp->pci.ioeventfds);
    msix_destroy(vp->msix);     /* closes the irqfds */
    virtio_set_transport(vdev, &(struct virtio_transport){ 0 });
    g_mutex_clear(&vp->lock);
    g_free(vp->irqfd);
    g_free(vp->kick_fd);
    g_free(vp->id);
    g_free(vp);
}

struct virtio_pci *virtio_pci_create(struct pci_host *host, struct irq_routing *routing,
                                     struct virtio_device *vdev, const struct virtio_pci_params *p,
                                     GError **err)
{
    struct virtio_pci *vp = g_new0(struct virtio_pci, 1);
    vp->vdev = vdev;
    vp->id = g_strdup(p->id ? p->id : vdev->ops->name);
    vp->release = p->release;
    vp->nvec = vdev->num_queues + 1;
    vp->irqfd = g_new(int, vp->nvec);
    vp->kick_fd = g_new(int, MAX(vdev->num_queues, 1u));
    for (unsigned i = 0; i < vp->nvec; i++)
        vp->irqfd[i] = -1;
    for (unsigned i = 0; i < vdev->num_queues; i++)
        vp->kick_fd[i] = -1;
    g_mutex_init(&vp->lock);

    int r = build_function(vp);
    if (r == 0) {
        uint64_t pba_off = VIRTIO_PCI_MSIX_OFF + round_page((uint64_t)vp->nvec * MSIX_ENTRY_SIZE);
        vp->msix = msix_create(&vp->pci, routing, vp->nvec, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_OFF, VIRTIO_PCI_BAR,
                               (uint32_t)pba_off);
        if (!vp->msix)
            r = -ENOSPC;
    }
    if (r < 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: %u queues do not fit a virtio-pci function's capabilities", vp->id,
                    vdev->num_queues);
        free_transport(vp);
        return NULL;
    }
    virtio_set_transport(vdev, &(struct virtio_transport){ .interrupt = transport_interrupt, .opaque = vp });
    bind_kicks(vp);
    r = pci_host_plug_device(host, &vp->pci, p->slot, !p->hotplug);
    if (r < 0) {
        const char *why = r == -EBUSY ? (p->slot < 0 ? "every slot of bus 0 is taken" : "the slot is taken")
                          : r == -ENOSPC ? "its BAR does not fit the PCI memory window"
                                         : g_strerror(-r);
        if (p->slot < 0)
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "%s: cannot plug it into PCI bus 0: %s", vp->id, why);
        else
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "%s: cannot plug it into PCI slot %d: %s", vp->id,
                        p->slot, why);
        free_transport(vp);
        return NULL;
    }
    return vp;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
    if (!vp)
        return;
    struct virtio_device *vdev = vp->vdev;
    void (*release)(struct virtio_device *) = vp->release;
    free_transport(vp);
    if (release)
        release(vdev);
}

struct pci_device *virtio_pci_function(struct virtio_pci *vp)
{
    return &vp->pci;
}

/* ---- struct device ---- */

static int vp_save(void *dev, struct state_writer *w)
{
    struct virtio_pci *vp = dev;
    g_mutex_lock(&vp->lock);
    state_begin_section(w, "virtio-pci", VIRTIO_PCI_STATE_VERSION);
    state_put_u32(w, vp->nvec);
    state_put_u32(w, vp->dfselect);
    state_put_u32(w, vp->gfselect);
    state_put_u16(w, vp->queue_select);
    state_end_section(w);
    g_mutex_unlock(&vp->lock);
    int r = msix_save(vp->msix, w);
    return r < 0 ? r : virtio_device_save(vp->vdev, w);
}

static int vp_load(void *dev, struct state_reader *r)
{
    struct virtio_pci *vp = dev;
    uint32_t version, nvec = 0, dfsel = 0, gfsel = 0;
    uint16_t qsel = 0;
    if (state_open_section(r, "virtio-pci", VIRTIO_PCI_STATE_VERSION, &version, NULL) < 0)
        return -EINVAL;
    state_get_u32(r, &nvec);
    state_get_u32(r, &dfsel);
    state_get_u32(r, &gfsel);
    state_get_u16(r, &qsel);
    if (state_close_section(r, NULL) < 0 || nvec != vp->nvec)
        return -EINVAL;
    /* msix_load and virtio_device_load each check before they apply; the
     * table as it was is kept so that a refused virtio section undoes the
     * MSI-X one and the load never half-applies. */
    struct state_writer *undo_w = state_writer_new();
    msix_save(vp->msix, undo_w);
    g_autoptr(GBytes) undo = state_writer_finish(undo_w);
    if (msix_load(vp->msix, r) < 0)
        return -EINVAL;
    g_autoptr(GError) err = NULL;
    if (virtio_device_load(vp->vdev, r, &err) < 0) {
        log_warn("%s", err->message);
        struct state_reader *ur = state_reader_new(undo, NULL);
        if (ur)
            msix_load(vp->msix, ur);
        state_reader_free(ur);
        return -EINVAL;
    }
    g_mutex_lock(&vp->lock);
    vp->dfselect = dfsel;
    vp->gfselect = gfsel;
    vp->queue_select = qsel;
    vector_assigned(vp, virtio_get_config_vector(vp->vdev));
    for (unsigned q = 0; q < vp->vdev->num_queues; q++)
        vector_assigned(vp, virtio_queue_get_vector(vp->vdev, q));
    g_mutex_unlock(&vp->lock);
    return 0;
}

static void vp_destroy(void *dev)
{
    virtio_pci_destroy(dev);
}

static const struct device_ops virtio_pci_device_ops = {
    .type = "virtio-pci",
    .save = vp_save,
    .load = vp_load,
    .destroy = vp_destroy,
};

struct device virtio_pci_device(struct virtio_pci *vp)
{
    if (!vp)
        return (struct device){ 0 };
    return (struct device){ .id = vp->id, .ops = &virtio_pci_device_ops, .dev = vp };
}
