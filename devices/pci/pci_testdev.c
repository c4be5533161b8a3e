#include "devices/pci/pci_testdev.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_host.h"
#include "vmm/log.h"

#define REG_SCRATCH     0x00
#define REG_NOTIFY      0x04
#define REG_IRQFD       0x08
#define REG_DOORBELL    0x0c
#define REG_FAST_KICKS  0x10
#define REG_SLOW_KICKS  0x14

struct pci_testdev {
    struct pci_device pci;
    struct msix *msix;
    uint32_t scratch_mem;       /* accessed whole by one vCPU at a time in tests */
    uint32_t scratch_io;
    int doorbell_fd;
    uint32_t slow_kicks;
};

static uint32_t *scratch(struct pci_testdev *t, unsigned bar, uint64_t off)
{
    if (off != REG_SCRATCH)
        return NULL;
    return bar == 0 ? &t->scratch_mem : bar == 1 ? &t->scratch_io : NULL;
}

static void testdev_read(struct pci_device *d, unsigned bar, uint64_t off, void *data, unsigned size)
{
    struct pci_testdev *t = d->opaque;
    uint32_t *s = scratch(t, bar, off);
    uint64_t v = s ? *s : 0;
    if (bar == 0 && off == REG_FAST_KICKS && read(t->doorbell_fd, &v, sizeof(v)) != sizeof(v))
        v = 0;
    else if (bar == 0 && off == REG_SLOW_KICKS)
        v = t->slow_kicks;
    memcpy(data, &v, size);
}

static void raise_by_irqfd(struct pci_testdev *t, unsigned vector)
{
    int fd = msix_vector_irqfd(t->msix, vector);
    uint64_t one = 1;
    if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one))
        log_warn("pci-testdev: cannot raise vector %u by irqfd", vector);
}

static void testdev_write(struct pci_device *d, unsigned bar, uint64_t off, const void *data, unsigned size)
{
    struct pci_testdev *t = d->opaque;
    uint32_t v = 0;
    memcpy(&v, data, MIN(size, sizeof(v)));
    uint32_t *s = scratch(t, bar, off);
    if (s)
        *s = v;
    else if (bar == 0 && off == REG_NOTIFY)
        msix_notify(t->msix, v);
    else if (bar == 0 && off == REG_IRQFD && v < PCI_TESTDEV_VECTORS)
        raise_by_irqfd(t, v);
    else if (bar == 0 && off == REG_DOORBELL)
        t->slow_kicks++;
}

static void testdev_reset(struct pci_device *d)
{
    struct pci_testdev *t = d->opaque;
    t->scratch_mem = t->scratch_io = 0;
    t->slow_kicks = 0;
}

static const struct pci_device_ops testdev_pci_ops = {
    .bar_read = testdev_read,
    .bar_write = testdev_write,
    .reset = testdev_reset,
};

static void testdev_destroy(void *dev)
{
    struct pci_testdev *t = dev;
    if (t->pci.host)
        pci_host_remove_device(t->pci.host, &t->pci);
    msix_destroy(t->msix);
    if (t->doorbell_fd >= 0)
        close(t->doorbell_fd);
    g_free(t);
}

/* Reset comes through the host bridge, which resets every function. */
static const struct device_ops testdev_device_ops = {
    .type = "pci-testdev",
    .destroy = testdev_destroy,
};

struct device pci_testdev_create(struct pci_host *host, struct irq_routing *routing)
{
    struct pci_testdev *t = g_new0(struct pci_testdev, 1);
    t->doorbell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pci_device_init(&t->pci, "pci-testdev", &testdev_pci_ops, t, PCI_TESTDEV_VENDOR_ID, PCI_TESTDEV_DEVICE_ID,
                    0xff0000, 0);
    if (pci_device_add_bar(&t->pci, 0, PCI_BAR_MEM32, false, 0x1000) < 0 ||
        pci_device_add_bar(&t->pci, 1, PCI_BAR_IO, false, 16) < 0 ||
        pci_device_add_bar(&t->pci, 2, PCI_BAR_MEM64, true, 0x4000) < 0 ||
        !(t->msix = msix_create(&t->pci, routing, PCI_TESTDEV_VECTORS, 2, 0, 2, 0x800)) || t->doorbell_fd < 0 ||
        pci_device_add_ioeventfd(&t->pci, 0, REG_DOORBELL, 4, t->doorbell_fd) < 0 ||
        pci_host_add_device(host, &t->pci, -1) < 0) {
        testdev_destroy(t);
        return (struct device){ 0 };
    }
    return (struct device){ .id = "pci-testdev", .ops = &testdev_device_ops, .dev = t };
}
