#include "vmm/vm.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "devices/acpi_pcihp.h"
#include "devices/acpi_pm.h"
#include "devices/cpu_hotplug.h"
#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/ioapic.h"
#include "devices/net_user.h"
#include "devices/pci/pci_host.h"
#include "devices/pci/pci_testdev.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/char_backend.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/mem.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "firmware/reset_vector.h"
#include "vmm/iothread.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/log.h"
#include "vmm/vcpu.h"

/* Addresses KVM needs on Intel hosts for real-mode emulation; in the hole,
 * below the IOAPIC, never RAM. */
#define KVM_TSS_ADDR          0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static int kvm_fail(GError **err, const char *what)
{
    g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", what, g_strerror(errno));
    return -1;
}

void vm_set_irq(void *opaque, unsigned gsi, bool level)
{
    struct vm *vm = opaque;
    if (vm->split_irqchip) {
        ioapic_set_irq(vm->ioapic, gsi, level);
        return;
    }
    struct kvm_irq_level irq = { .irq = gsi, .level = level };
    if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
        log_warn("KVM_IRQ_LINE %u: %s", gsi, g_strerror(errno));
}

static void machine_request_fn(void *opaque, enum machine_request req, int arg)
{
    struct vm *vm = opaque;
    switch (req) {
    case MACHINE_POWEROFF:
        vm_request_stop(vm, VM_STOP_POWEROFF, 0);
        break;
    case MACHINE_RESET:
        vm_request_stop(vm, VM_STOP_RESET, 0);
        break;
    case MACHINE_DEBUG_EXIT:
        vm_request_stop(vm, VM_STOP_DEBUG_EXIT, arg);
        break;
    }
}

struct machine_ctl vm_machine_ctl(struct vm *vm)
{
    return (struct machine_ctl){ .request = machine_request_fn, .opaque = vm };
}

/* Wakes parked vCPU threads so they see `stopping` (set before). */
static void wake_parked(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    pthread_cond_broadcast(&vm->pause_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

bool vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int arg)
{
    pthread_mutex_lock(&vm->stop_lock);
    bool first = vm->stop_reason == VM_STOP_NONE;
    if (first) {
        vm->stop_reason = reason;
        vm->stop_arg = arg;
    }
    pthread_mutex_unlock(&vm->stop_lock);
    if (first) {
        /* Stop every vCPU now: nothing a guest does after this must be seen. */
        __atomic_store_n(&vm->stopping, true, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&vm->vcpus_lock);
        for (unsigned i = 0; i < vm->max_vcpus; i++)
            if (vm->vcpus[i])
                vcpu_kick(vm->vcpus[i]);
        pthread_mutex_unlock(&vm->vcpus_lock);
        wake_parked(vm);
        uint64_t one = 1;
        if (write(vm->stop_eventfd, &one, sizeof(one)) < 0)
            log_warn("cannot signal VM stop: %s", g_strerror(errno));
    }
    return first;
}

void vm_pause(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    vm->pause_depth++;
    pthread_mutex_unlock(&vm->pause_lock);
    pthread_mutex_lock(&vm->vcpus_lock);
    for (unsigned i = 0; i < vm->max_vcpus; i++)
        if (vm->vcpus[i])
            vcpu_kick(vm->vcpus[i]);
    pthread_mutex_unlock(&vm->vcpus_lock);
    pthread_mutex_lock(&vm->pause_lock);
    while (vm->nr_parked + vm->nr_exited < vm->nr_threads)
        pthread_cond_wait(&vm->parked_cond, &vm->pause_lock);
    pthread_mutex_unlock(&vm->pause_lock);
}

void vm_resume(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    if (vm->pause_depth && --vm->pause_depth == 0)
        pthread_cond_broadcast(&vm->pause_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

static void add_device(struct vm *vm, struct device d)
{
    g_array_append_val(vm->devices, d);
}

static int create_irqchip(struct vm *vm, GError **err)
{
    /* Split irqchip: LAPICs in KVM, IOAPIC here. It costs nothing at start-up
     * and teardown, where KVM_CREATE_IRQCHIP costs ~7 ms (research/peers.md). */
    if (vm->caps.split_irqchip) {
        struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { IOAPIC_NUM_PINS } };
        if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0) {
            vm->split_irqchip = true;
            vm->irq_routing = irq_routing_create(vm->vm_fd, true);
            vm->ioapic = ioapic_create(vm->irq_routing, &vm->mmio, LAYOUT_IOAPIC_ADDR);
            add_device(vm, ioapic_device(vm->ioapic));
            return 0;
        }
        log_info("split irqchip refused (%s); using KVM's in-kernel IOAPIC", g_strerror(errno));
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return kvm_fail(err, "KVM_CREATE_IRQCHIP");
    vm->irq_routing = irq_routing_create(vm->vm_fd, false);
    return 0;
}

/* The 64-bit PCI window: the first 1 GiB boundary above RAM, the hotplug
 * region and 4 GiB. */
static uint64_t pci_mmio64_base(const struct guest_memory *gm)
{
    uint64_t top = LAYOUT_4GIB;
    for (unsigned i = 0; i < gm->nr_regions; i++)
        top = MAX(top, gm->regions[i].gpa + gm->regions[i].size);
    return (top + LAYOUT_PCI_MMIO64_ALIGN - 1) & ~(LAYOUT_PCI_MMIO64_ALIGN - 1);
}

static void rng_release(struct virtio_device *vdev)
{
    virtio_rng_free(vdev->opaque);
}

/* PCI devices take the first free device number on bus 0 in the order they
 * are created: pci-testdev (with --test-exit), then the virtio devices. */
static int add_virtio_rng(struct vm *vm, GError **err)
{
    struct virtio_rng *rng = virtio_rng_new(&vm->mem, vm->loop);
    struct virtio_pci_params p = { .id = "virtio-rng", .slot = -1, .release = rng_release };
    struct virtio_pci *vp = virtio_pci_create(vm->pci, vm->irq_routing, &rng->vdev, &p, err);
    if (!vp) {
        virtio_rng_free(rng);
        return -1;
    }
    add_device(vm, virtio_pci_device(vp));
    return 0;
}

static void blk_release(struct virtio_device *vdev)
{
    virtio_blk_free(vdev->opaque);
}

/* A device whose queues run on an I/O thread's loop: its save, load and
 * destroy run there too (loop_call_wait), as its creation did. */
struct pinned_device {
    struct device inner;
    struct loop *loop;
    struct state_writer *w;
    struct state_reader *r;
    int ret;
};

static void pinned_save_fn(void *opaque)
{
    struct pinned_device *p = opaque;
    p->ret = p->inner.ops->save ? p->inner.ops->save(p->inner.dev, p->w) : 0;
}

static int pinned_save(void *dev, struct state_writer *w)
{
    struct pinned_device *p = dev;
    p->w = w;
    loop_call_wait(p->loop, pinned_save_fn, p);
    return p->ret;
}

static void pinned_load_fn(void *opaque)
{
    struct pinned_device *p = opaque;
    p->ret = p->inner.ops->load ? p->inner.ops->load(p->inner.dev, p->r) : 0;
}

static int pinned_load(void *dev, struct state_reader *r)
{
    struct pinned_device *p = dev;
    p->r = r;
    loop_call_wait(p->loop, pinned_load_fn, p);
    return p->ret;
}

static void pinned_destroy_fn(void *opaque)
{
    struct pinned_device *p = opaque;
    if (p->inner.ops->destroy)
        p->inner.ops->destroy(p->inner.dev);
}

static void pinned_destroy(void *dev)
{
    struct pinned_device *p = dev;
    loop_call_wait(p->loop, pinned_destroy_fn, p);
    g_free(p);
}

static const struct device_ops pinned_device_ops = {
    .type = "virtio-pci",
    .save = pinned_save,
    .load = pinned_load,
    .destroy = pinned_destroy,
};

/* Returns the .dev of the entry added to vm->devices. */
static void *add_device_on(struct vm *vm, struct device d, struct loop *loop)
{
    if (loop == vm->loop) {
        add_device(vm, d);
        return d.dev;
    }
    struct pinned_device *p = g_new0(struct pinned_device, 1);
    p->inner = d;
    p->loop = loop;
    add_device(vm, (struct device){ .id = d.id, .ops = &pinned_device_ops, .dev = p });
    return p;
}

/* A removable device (disk or NIC) in a bus 0 slot. */
struct vm_pci_slot {
    char *id;
    struct virtio_pci *vp;
    void *key;              /* its entry's .dev in vm->devices */
};

static int record_slot(struct vm *vm, struct virtio_pci *vp, void *key, const char *id, bool hotplug)
{
    unsigned slot = virtio_pci_function(vp)->devfn >> 3;
    struct vm_pci_slot *s = &vm->pci_slots[slot];
    g_free(s->id);
    s->id = g_strdup(id);
    s->vp = vp;
    s->key = key;
    if (vm->pcihp)
        acpi_pcihp_plugged(vm->pcihp, slot, hotplug);
    return (int)slot;
}

struct blk_create {
    struct vm *vm;
    const struct disk_config *d;
    struct loop *loop;
    int slot;
    bool hotplug;
    GError **err;
    int ret;
};

/* On the loop the disk's queues run on. */
static void add_virtio_blk_fn(void *opaque)
{
    struct blk_create *c = opaque;
    struct vm *vm = c->vm;
    const struct disk_config *d = c->d;
    struct virtio_blk_params bp = {
        .disk = { .path = d->path, .readonly = d->readonly, .aio = d->aio, .cache = d->cache },
        .num_queues = d->num_queues,
        .serial = d->serial,
    };
    GError *e = NULL;
    c->ret = -1;
    struct virtio_blk *blk = virtio_blk_new(&vm->mem, c->loop, &bp, &e);
    if (!blk) {
        /* What the user gave does not work here: a configuration error. */
        g_set_error_literal(c->err, CONFIG_ERROR, 0, e->message);
        g_error_free(e);
        return;
    }
    struct virtio_pci_params p = { .id = d->id, .slot = c->slot, .hotplug = c->hotplug, .release = blk_release };
    struct virtio_pci *vp = virtio_pci_create(vm->pci, vm->irq_routing, &blk->vdev, &p, c->err);
    if (!vp) {
        virtio_blk_free(blk);
        return;
    }
    void *key = add_device_on(vm, virtio_pci_device(vp), c->loop);
    c->ret = record_slot(vm, vp, key, d->id, c->hotplug);
}

/* Returns the slot or -1. */
static int add_virtio_blk(struct vm *vm, const struct disk_config *d, int slot, bool hotplug, GError **err)
{
    struct blk_create c = { .vm = vm, .d = d, .loop = vm->loop, .slot = slot, .hotplug = hotplug, .err = err };
    if (d->iothread) {
        struct iothread *t = iothread_find(d->iothread);
        if (!t) {
            g_set_error(err, CONFIG_ERROR, 0, "--disk %s: iothread '%s' does not exist", d->path, d->iothread);
            return -1;
        }
        c.loop = iothread_loop(t);
    }
    loop_call_wait(c.loop, add_virtio_blk_fn, &c);
    return c.ret;
}

static void net_release(struct virtio_device *vdev)
{
    virtio_net_free(vdev->opaque);
}

/* The tap (cfg->backend) was opened by main and stays open across resets.
 * Returns the slot or -1. */
static int add_virtio_net(struct vm *vm, const struct net_config *n, int slot, bool hotplug, GError **err)
{
    struct virtio_net_params np = { .tap = n->backend };
    if (n->mac_set) {
        memcpy(np.mac, n->mac, 6);
    } else {
        g_autofree char *seed = g_strdup_printf("%s/%s", vm->cfg->name ? vm->cfg->name : "", n->id);
        virtio_net_mac_from_seed(seed, np.mac);
    }
    net_user_attach(n->backend, vm->loop);     /* user networking runs on this loop (no-op for a tap) */
    struct virtio_net *net = virtio_net_new(&vm->mem, vm->loop, &np);
    struct virtio_pci_params p = { .id = n->id, .slot = slot, .hotplug = hotplug, .release = net_release };
    struct virtio_pci *vp = virtio_pci_create(vm->pci, vm->irq_routing, &net->vdev, &p, err);
    if (!vp) {
        virtio_net_free(net);
        return -1;
    }
    add_device(vm, virtio_pci_device(vp));
    return record_slot(vm, vp, vp, n->id, hotplug);
}

static void console_release(struct virtio_device *vdev)
{
    virtio_console_free(vdev->opaque);
}

static int add_virtio_console(struct vm *vm, GError **err)
{
    uint16_t cols = 0, rows = 0;
    char_backend_winsize(vm->console_be, &cols, &rows);
    struct virtio_console *con = virtio_console_new(&vm->mem, vm->loop, vm->console_be, cols, rows);
    int slot = vm->cfg->console_pci_slot ? vm->cfg->console_pci_slot : -1;
    struct virtio_pci_params p = { .id = "virtio-console", .slot = slot, .release = console_release };
    struct virtio_pci *vp = virtio_pci_create(vm->pci, vm->irq_routing, &con->vdev, &p, err);
    if (!vp) {
        virtio_console_free(con);
        return -1;
    }
    add_device(vm, virtio_pci_device(vp));
    vm->console = con;
    return 0;
}

void vm_console_resized(struct vm *vm)
{
    uint16_t cols, rows;
    if (vm->console && char_backend_winsize(vm->console_be, &cols, &rows))
        virtio_console_resize(vm->console, cols, rows);
}

static void mem_release(struct virtio_device *vdev)
{
    virtio_mem_free(vdev->opaque);
}

/* virtio-mem over the hotplug region, asking for what the configuration
 * asks now (the control socket may have changed it before a guest reset). */
static int add_virtio_mem(struct vm *vm, GError **err)
{
    struct virtio_mem *m = virtio_mem_new(&vm->mem, vm->loop, VMEM_DEVICE_ID, vm->cfg->mem_hotplug_requested);
    struct virtio_pci_params p = { .id = VMEM_DEVICE_ID, .slot = -1, .release = mem_release };
    struct virtio_pci *vp = virtio_pci_create(vm->pci, vm->irq_routing, &m->vdev, &p, err);
    if (!vp) {
        virtio_mem_free(m);
        return -1;
    }
    add_device(vm, virtio_pci_device(vp));
    vm->vmem = m;
    return 0;
}

/* The first free slot of bus 0 outside `named`; -1 (the host's first free
 * slot, or its error) when there is none. */
static int first_unnamed(struct vm *vm, uint32_t named)
{
    uint32_t free = ACPI_PCIHP_ALL_SLOTS & ~pci_host_slots_used(vm->pci) & ~named;
    return free ? __builtin_ctz(free) : -1;
}

static int create_pci(struct vm *vm, GError **err)
{
    struct pci_host_config pc = {
        .ecam = { LAYOUT_PCIE_ECAM_START, LAYOUT_PCIE_ECAM_SIZE },
        .mmio32 = { LAYOUT_PCI_MMIO32_START, LAYOUT_PCI_MMIO32_SIZE },
        .mmio64 = { pci_mmio64_base(&vm->mem), LAYOUT_PCI_MMIO64_SIZE },
        .io = { LAYOUT_PCI_IO_START, LAYOUT_PCI_IO_SIZE },
    };
    vm->pci = pci_host_create(&vm->pio, &vm->mmio, &pc);
    if (!vm->pci) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "cannot place the PCI host bridge (ECAM or 0xCF8) over another device");
        return -1;
    }
    add_device(vm, pci_host_device(vm->pci));
    struct pci_ioeventfd_ops ioev = { pci_kvm_ioeventfd, (void *)(intptr_t)vm->vm_fd };
    pci_host_set_ioeventfd_ops(vm->pci, &ioev);
    /* guest-tests' PCI case sizes, moves and interrupts through it. */
    if (vm->cfg->test_exit)
        add_device(vm, pci_testdev_create(vm->pci, vm->irq_routing));
    if (vm->cfg->rng && add_virtio_rng(vm, err) < 0)
        return -1;
    if (vm->console_be && add_virtio_console(vm, err) < 0)
        return -1;
    /* A disk or NIC without a slot takes the first free one that no other
     * names (hot-plugged ones keep the slot they got across resets). */
    uint32_t named = 0;
    for (unsigned i = 0; i < vm->cfg->nr_disks; i++)
        named |= vm->cfg->disks[i].pci_slot ? 1u << vm->cfg->disks[i].pci_slot : 0;
    for (unsigned i = 0; i < vm->cfg->nr_nets; i++)
        named |= vm->cfg->nets[i].pci_slot ? 1u << vm->cfg->nets[i].pci_slot : 0;
    for (unsigned i = 0; i < vm->cfg->nr_disks; i++)
        if (add_virtio_blk(vm, &vm->cfg->disks[i],
                           vm->cfg->disks[i].pci_slot ? vm->cfg->disks[i].pci_slot : first_unnamed(vm, named), false,
                           err) < 0)
            return -1;
    for (unsigned i = 0; i < vm->cfg->nr_nets; i++)
        if (add_virtio_net(vm, &vm->cfg->nets[i],
                           vm->cfg->nets[i].pci_slot ? vm->cfg->nets[i].pci_slot : first_unnamed(vm, named), false,
                           err) < 0)
            return -1;
    if (vm->cfg->mem_hotplug_size && add_virtio_mem(vm, err) < 0)
        return -1;
    /* The disks, NICs and free slots can be hot-(un)plugged; the other
     * devices stay for the VM's life. */
    uint32_t fixed = pci_host_slots_used(vm->pci);
    for (unsigned slot = 0; slot < PCI_MAX_SLOTS; slot++)
        if (vm->pci_slots[slot].vp)
            fixed &= ~(1u << slot);
    vm->pci_hotplug_slots = ACPI_PCIHP_ALL_SLOTS & ~fixed;
    return 0;
}

/* ---- PCI hotplug ---- */

static int check_hotplug_slot(struct vm *vm, int slot, GError **err)
{
    if (slot < 0)
        return 0;
    if (slot == 0 || slot >= PCI_MAX_SLOTS || !(vm->pci_hotplug_slots & (1u << slot))) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "PCI slot %d of bus 0 does not support hotplugging", slot);
        return -1;
    }
    return 0;
}

/* With slot -1 the first free slot the DSDT describes (a free slot outside
 * it could not be announced to the guest). */
static int pick_slot(struct vm *vm, int slot, GError **err)
{
    if (slot >= 0)
        return slot;
    uint32_t free = vm->pci_hotplug_slots & ~pci_host_slots_used(vm->pci);
    if (!free) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "no free PCI slot on bus 0 for hotplugging");
        return -1;
    }
    return __builtin_ctz(free);
}

int vm_hotplug_disk(struct vm *vm, const struct disk_config *d, int slot, GError **err)
{
    if (check_hotplug_slot(vm, slot, err) < 0 || (slot = pick_slot(vm, slot, err)) < 0)
        return -1;
    return add_virtio_blk(vm, d, slot, true, err);
}

int vm_hotplug_net(struct vm *vm, const struct net_config *n, int slot, GError **err)
{
    if (check_hotplug_slot(vm, slot, err) < 0 || (slot = pick_slot(vm, slot, err)) < 0)
        return -1;
    return add_virtio_net(vm, n, slot, true, err);
}

int vm_hotplug_slot_of(struct vm *vm, const char *id)
{
    for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
        if (vm->pci_slots[s].vp && g_strcmp0(vm->pci_slots[s].id, id) == 0)
            return (int)s;
    return -1;
}

int vm_hotplug_request_unplug(struct vm *vm, const char *id)
{
    int slot = vm_hotplug_slot_of(vm, id);
    if (slot < 0 || !vm->pcihp)
        return -ENODEV;
    return acpi_pcihp_request_unplug(vm->pcihp, (unsigned)slot);
}

void vm_set_unplugged_handler(struct vm *vm, void (*fn)(void *opaque, const char *id), void *opaque)
{
    vm->unplugged = fn;
    vm->unplugged_opaque = opaque;
}

void vm_set_cpu_ost_handler(struct vm *vm, vm_cpu_ost_fn fn, void *opaque)
{
    vm->cpu_ost = fn;
    vm->cpu_ost_opaque = opaque;
}

struct unplug {
    struct vm *vm;
    unsigned slot;
    struct device dev;      /* taken out of vm->devices */
    char *id;
    unsigned rounds;
};

/* Second half, a few loop rounds later: work a vCPU queued for the device
 * before it was unplugged (a kick, a reset: one level of loop_call, which
 * may queue one more) has run by then; nothing can queue more. */
static void unplug_destroy(void *opaque)
{
    struct unplug *u = opaque;
    if (u->rounds-- > 0) {
        loop_call(u->vm->loop, unplug_destroy, u);
        return;
    }
    if (u->dev.ops && u->dev.ops->destroy)
        u->dev.ops->destroy(u->dev.dev);
    if (u->vm->unplugged)
        u->vm->unplugged(u->vm->unplugged_opaque, u->id);
    g_free(u->id);
    g_free(u);
}

/* The guest ejected the slot. Main loop thread: no more config or BAR
 * access can reach the function once it is off the host and the buses
 * are synchronized; then it is taken out of vm->devices and destroyed. */
static void unplug_on_loop(void *opaque)
{
    struct unplug *u = opaque;
    struct vm *vm = u->vm;
    struct vm_pci_slot *s = &vm->pci_slots[u->slot];
    if (!s->vp) {
        g_free(u);
        return;
    }
    pci_host_remove_device(vm->pci, virtio_pci_function(s->vp));
    bus_synchronize(&vm->pio);
    bus_synchronize(&vm->mmio);
    for (guint i = 0; i < vm->devices->len; i++) {
        struct device *d = &g_array_index(vm->devices, struct device, i);
        if (d->dev == s->key) {
            u->dev = *d;
            g_array_remove_index(vm->devices, i);
            break;
        }
    }
    u->id = s->id;
    u->rounds = 3;
    *s = (struct vm_pci_slot){ 0 };
    log_info("PCI slot %u: the guest ejected %s", u->slot, u->id);
    unplug_destroy(u);
}

/* vCPU thread (the guest's _EJ0): the work is the main loop's. */
static void pcihp_eject(void *opaque, unsigned slot)
{
    struct vm *vm = opaque;
    struct unplug *u = g_new0(struct unplug, 1);
    u->vm = vm;
    u->slot = slot;
    loop_call(vm->loop, unplug_on_loop, u);
}

static void cpu_hotplug_notify(void *opaque)
{
    struct vm *vm = opaque;
    acpi_pm_ged_event(vm->acpi_pm, GED_EVENT_CPU_HOTPLUG);
}

struct cpu_ejected {
    struct vm *vm;
    unsigned index;
};

/* Main loop: the guest ejected the CPU (the controller shows it absent
 * already). Its thread leaves KVM_RUN and is joined, its fd kept. Runs
 * before the VM is destroyed even when the VM stopped meanwhile (the loop's
 * calls run before teardown); the slot is NULL then. */
static void cpu_ejected_fn(void *opaque)
{
    struct cpu_ejected *e = opaque;
    struct vm *vm = e->vm;
    unsigned i = e->index;
    g_free(e);
    pthread_mutex_lock(&vm->vcpus_lock);
    struct vcpu *v = vm->vcpus[i];
    vm->vcpus[i] = NULL;
    pthread_mutex_unlock(&vm->vcpus_lock);
    if (v) {
        vcpu_unplug(v);
        vm->spare_vcpus[i] = v;
        log_info("vCPU %u unplugged: the guest ejected it", i);
    }
    struct vm_cpu_unplug u = vm->unplug[i];
    vm->unplug[i] = (struct vm_cpu_unplug){ 0 };
    if (u.fn)
        u.fn(u.opaque, i);
}

/* vCPU thread (the guest's _EJ0): the work is the main loop's. */
static void cpu_hotplug_ejected(void *opaque, unsigned index)
{
    struct vm *vm = opaque;
    struct cpu_ejected *e = g_new(struct cpu_ejected, 1);
    *e = (struct cpu_ejected){ vm, index };
    loop_call(vm->loop, cpu_ejected_fn, e);
}

struct cpu_ost {
    struct vm *vm;
    unsigned index;
    uint32_t event, status;
};

static void cpu_ost_fn(void *opaque)
{
    struct cpu_ost *o = opaque;
    if (o->vm->cpu_ost)
        o->vm->cpu_ost(o->vm->cpu_ost_opaque, o->index, o->event, o->status);
    g_free(o);
}

/* vCPU thread (the guest's _OST): reported from the main loop. */
static void vm_cpu_ost_report(void *opaque, unsigned index, uint32_t event, uint32_t status)
{
    struct vm *vm = opaque;
    struct cpu_ost *o = g_new(struct cpu_ost, 1);
    *o = (struct cpu_ost){ vm, index, event, status };
    loop_call(vm->loop, cpu_ost_fn, o);
}

static int create_cpu_hotplug(struct vm *vm)
{
    const struct vm_config *cfg = vm->cfg;
    if (cfg->cpus_max <= cfg->cpus_boot)
        return 0;
    struct cpu_hotplug_ops ops = { .notify = cpu_hotplug_notify, .ejected = cpu_hotplug_ejected,
                                   .ost = vm_cpu_ost_report, .opaque = vm };
    vm->cpu_hotplug = cpu_hotplug_create(&vm->pio, PORT_CPU_HOTPLUG, cfg->cpus_max, &ops);
    if (!vm->cpu_hotplug)
        return -1;
    for (unsigned i = 0; i < cfg->cpus_max; i++)
        if (config_cpu_present(cfg, i))
            cpu_hotplug_set_present(vm->cpu_hotplug, i);
    add_device(vm, cpu_hotplug_device(vm->cpu_hotplug));
    return 0;
}

static int create_devices(struct vm *vm)
{
    const struct vm_config *cfg = vm->cfg;
    struct machine_ctl ctl = vm_machine_ctl(vm);
    struct irq_line com1 = { vm_set_irq, vm, IRQ_COM1 };
    struct irq_line rtc_irq = { vm_set_irq, vm, IRQ_RTC };
    struct irq_line ged = { vm_set_irq, vm, IRQ_ACPI_GED };

    if (vm->serial_be)
        add_device(vm, serial_device(serial_create(&vm->pio, PORT_COM1, com1, vm->serial_be)));
    add_device(vm, i8042_device(i8042_create(&vm->pio, ctl)));
    add_device(vm, rtc_device(rtc_create(&vm->pio, rtc_irq)));
    vm->acpi_pm = acpi_pm_create(&vm->pio, ged, ctl);
    add_device(vm, acpi_pm_device(vm->acpi_pm));
    struct acpi_pcihp_ops hp_ops = { pcihp_eject, vm };
    vm->pcihp = acpi_pcihp_create(&vm->pio, PORT_PCI_HOTPLUG, vm->acpi_pm, &hp_ops);
    add_device(vm, acpi_pcihp_device(vm->pcihp));
    if (cfg->test_exit)
        add_device(vm, debug_exit_device(debug_exit_create(&vm->pio, PORT_DEBUG_EXIT, ctl)));
    return create_cpu_hotplug(vm);
}

static int create(struct vm *vm, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
                  struct loop *loop, struct char_backend *serial_be, struct char_backend *console_be, bool restoring,
                  int mem_fd, GError **err)
{
    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->kvm_fd = kvm_fd;
    vm->caps = *caps;
    vm->loop = loop;
    vm->serial_be = serial_be;
    vm->console_be = console_be;
    vm->vm_fd = -1;
    vm->mem.memfd = -1;
    vm->stop_eventfd = -1;
    pthread_mutex_init(&vm->stop_lock, NULL);
    pthread_mutex_init(&vm->pause_lock, NULL);
    pthread_cond_init(&vm->pause_cond, NULL);
    pthread_cond_init(&vm->parked_cond, NULL);
    pthread_mutex_init(&vm->vcpus_lock, NULL);
    vm->max_vcpus = MAX(cfg->cpus_max, cfg->cpus_boot);
    vm->vcpus = g_new0(struct vcpu *, vm->max_vcpus);
    vm->spare_vcpus = g_new0(struct vcpu *, vm->max_vcpus);
    vm->unplug = g_new0(struct vm_cpu_unplug, vm->max_vcpus);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    vm->devices = g_array_new(FALSE, FALSE, sizeof(struct device));
    vm->pci_slots = g_new0(struct vm_pci_slot, PCI_MAX_SLOTS);

    vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->stop_eventfd < 0)
        return kvm_fail(err, "eventfd");

    /* EINTR: io_uring's task work (a QMP client's bytes arriving on the
     * main loop's ring) interrupts it; QEMU retries likewise. */
    do
        vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    while (vm->vm_fd < 0 && errno == EINTR);
    if (vm->vm_fd < 0)
        return kvm_fail(err, "KVM_CREATE_VM");
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
        return kvm_fail(err, "KVM_SET_TSS_ADDR");
    uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        return kvm_fail(err, "KVM_SET_IDENTITY_MAP_ADDR");

    if (mem_fd >= 0 ? guest_memory_create_from_file(&vm->mem, cfg->mem_size, mem_fd, err) < 0
                  : guest_memory_create(&vm->mem, cfg->mem_size, cfg->mem_hugepages, cfg->mem_shared, err) < 0)
        return -1;
    if (cfg->mem_hotplug_size &&
        guest_memory_add_hotplug(&vm->mem, guest_memory_hotplug_base(cfg->mem_size), cfg->mem_hotplug_size,
                                 cfg->mem_hotplug_block, err) < 0)
        return -1;
    int r = guest_memory_register(&vm->mem, vm->vm_fd);
    if (r < 0) {
        errno = -r;
        return kvm_fail(err, "KVM_SET_USER_MEMORY_REGION");
    }
    if (create_irqchip(vm, err) < 0)
        return -1;
    if (create_devices(vm) < 0 || create_pci(vm, err) < 0)
        return -1;

    g_autofree bool *present = g_new0(bool, vm->max_vcpus);
    for (unsigned i = 0; i < vm->max_vcpus; i++)
        present[i] = config_cpu_present(cfg, i);
    struct acpi_config acfg = { .nr_cpus_boot = cfg->cpus_boot, .nr_cpus_max = cfg->cpus_max,
                                .cpu_present = present,
                                .serial = vm->serial_be != NULL, .pci = true,
                                .pci_mmio64_base = pci_mmio64_base(&vm->mem),
                                .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE,
                                .pci_hotplug_slots = vm->pci_hotplug_slots };
    uint64_t rsdp = 0;
    struct boot_entry entry;
    /* Restoring: RAM holds the guest as it was (tables, firmware, kernel and all). */
    if (!restoring) {
        if (acpi_install(&vm->mem, &acfg, &rsdp, err) < 0)
            return -1;
        if (firmware_install_reset_vector(&vm->mem) < 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "guest RAM does not cover the reset vector");
            return -1;
        }
        struct boot_params_in bin = { .kernel = cfg->kernel, .initrd = cfg->initrd, .cmdline = cfg->cmdline,
                                      .rsdp_gpa = rsdp };
        if (boot_load(&vm->mem, &bin, &entry, err) < 0)
            return -1;
        if (regs_write_boot_tables(&vm->mem, entry.mode) < 0) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "guest RAM too small for boot page tables");
            return -1;
        }
    }

    vm->supported_cpuid = cpuid_get_supported(kvm_fd, err);
    if (!vm->supported_cpuid)
        return -1;
    /* From here on the supported table lists SVM/VMX only when the guest
     * gets them, and every vCPU's table is built from it. */
    bool nested;
    if (kvm_nested_resolve(cfg->nested, &vm->caps, cpuid_host_nests(vm->supported_cpuid), &nested, err) < 0)
        return -1;
    if (!nested)
        cpuid_hide_nested(vm->supported_cpuid);
    if (cfg->guest_cpuid)
        vm->guest_cpuid = g_memdup2(cfg->guest_cpuid, sizeof(*cfg->guest_cpuid) +
                                    cfg->guest_cpuid->nent * sizeof(cfg->guest_cpuid->entries[0]));
    else
        vm->guest_cpuid = cpuid_build_nested(vm->supported_cpuid, cfg->cpu_model, 0, cfg->cpus_max,
                                             cpuid_host_nests(vm->supported_cpuid));
    for (unsigned i = 0; i < vm->max_vcpus; i++) {
        if (!present[i])
            continue;
        struct vcpu *v = vcpu_create(vm, i, err);
        if (!v)
            return -1;
        pthread_mutex_lock(&vm->vcpus_lock);
        vm->vcpus[i] = v;
        pthread_mutex_unlock(&vm->vcpus_lock);
    }
    if (!restoring && regs_setup_bsp(vm->vcpus[0]->fd, &entry, err) < 0)
        return -1;
    return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
              struct loop *loop, struct char_backend *serial_be, struct char_backend *console_be,
              GError **err)
{
    return create(vm, cfg, kvm_fd, caps, loop, serial_be, console_be, false, -1, err);
}

int vm_create_restored(struct vm *vm, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
                       struct loop *loop, struct char_backend *serial_be, struct char_backend *console_be,
                       int mem_fd, GError **err)
{
    return create(vm, cfg, kvm_fd, caps, loop, serial_be, console_be, true, mem_fd, err);
}

int vm_start(struct vm *vm, bool paused, GError **err)
{
    vm->pause_depth = paused ? 1 : 0;   /* no vCPU thread yet */
    for (unsigned i = 0; i < vm->max_vcpus; i++) {
        if (vm->vcpus[i] && vcpu_start(vm->vcpus[i], err) < 0) {
            vm_request_stop(vm, VM_STOP_INTERNAL_ERROR, 0);
            return -1;
        }
    }
    return 0;
}

void vm_stop_vcpus(struct vm *vm)
{
    __atomic_store_n(&vm->stopping, true, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&vm->vcpus_lock);
    for (unsigned i = 0; i < vm->max_vcpus; i++)
        if (vm->vcpus[i])
            vcpu_kick(vm->vcpus[i]);
    pthread_mutex_unlock(&vm->vcpus_lock);
    wake_parked(vm);
    for (unsigned i = 0; i < vm->max_vcpus; i++) {
        pthread_mutex_lock(&vm->vcpus_lock);
        struct vcpu *v = vm->vcpus[i];
        vm->vcpus[i] = NULL;
        pthread_mutex_unlock(&vm->vcpus_lock);
        vcpu_destroy(v);
        vcpu_destroy(vm->spare_vcpus[i]);
        vm->spare_vcpus[i] = NULL;
    }
}

unsigned vm_nr_vcpus(struct vm *vm)
{
    unsigned n = 0;
    pthread_mutex_lock(&vm->vcpus_lock);
    for (unsigned i = 0; i < vm->max_vcpus; i++)
        n += vm->vcpus[i] != NULL;
    pthread_mutex_unlock(&vm->vcpus_lock);
    return n;
}

int vm_cpu_add(struct vm *vm, unsigned index, GError **err)
{
    if (!vm->cpu_hotplug) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU hotplug needs room to grow: start vmm with --cpus boot=N,max=M, M > N");
        return -1;
    }
    if (index >= vm->max_vcpus) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU %u does not exist: this VM has CPUs 0 to %u (--cpus max=%u)", index,
                    vm->max_vcpus - 1, vm->max_vcpus);
        return -1;
    }
    if (vm->vcpus[index] || cpu_hotplug_present(vm->cpu_hotplug, index)) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU %u is already present", index);
        return -1;
    }
    if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
        g_set_error(err, CONFIG_ERROR, 0, "the VM is stopping");
        return -1;
    }
    struct vcpu *v = vm->spare_vcpus[index];
    if (v) {
        if (vcpu_replug(v, err) < 0)
            return -1;
        vm->spare_vcpus[index] = NULL;
    } else {
        v = vcpu_create(vm, index, err);
        if (!v)
            return -1;
    }
    if (vcpu_start(v, err) < 0) {
        vm->spare_vcpus[index] = v;
        return -1;
    }
    /* vcpu_start counted the thread (a paused VM's new thread parks at
     * once) and waited for its thread id (query-cpus-fast). */
    pthread_mutex_lock(&vm->vcpus_lock);
    vm->vcpus[index] = v;
    pthread_mutex_unlock(&vm->vcpus_lock);
    /* A stop that came meanwhile kicked the slots before this one was set. */
    if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
        vcpu_kick(v);
    cpu_hotplug_insert(vm->cpu_hotplug, index);
    log_info("vCPU %u plugged in", index);
    return 0;
}

int vm_cpu_request_remove(struct vm *vm, unsigned index, vm_cpu_removed_fn fn, void *opaque, GError **err)
{
    if (!vm->cpu_hotplug || index >= vm->max_vcpus || !vm->vcpus[index]) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU %u is not present", index);
        return -1;
    }
    if (index < vm->cfg->cpus_boot) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU %u is a boot CPU (--cpus boot=%u); only hot-added CPUs can be removed",
                    index, vm->cfg->cpus_boot);
        return -1;
    }
    if (cpu_hotplug_request_remove(vm->cpu_hotplug, index) < 0) {
        g_set_error(err, CONFIG_ERROR, 0, "CPU %u is not present", index);
        return -1;
    }
    vm->unplug[index] = (struct vm_cpu_unplug){ fn, opaque };
    return 0;
}

void vm_report_state(struct vm *vm)
{
    for (unsigned i = 0; i < vm->max_vcpus; i++)
        if (vm->vcpus[i])
            vcpu_report_state(vm->vcpus[i]);
    /* Parked vCPUs report from where they wait. */
    pthread_mutex_lock(&vm->pause_lock);
    pthread_cond_broadcast(&vm->pause_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus) {
        vm_stop_vcpus(vm);
        g_free(vm->vcpus);
        g_free(vm->spare_vcpus);
        g_free(vm->unplug);
    }
    if (vm->devices) {
        for (guint i = vm->devices->len; i-- > 0;) {
            struct device *d = &g_array_index(vm->devices, struct device, i);
            if (d->ops && d->ops->destroy)
                d->ops->destroy(d->dev);
        }
        g_array_free(vm->devices, TRUE);
    }
    if (vm->pci_slots)
        for (unsigned s = 0; s < PCI_MAX_SLOTS; s++)
            g_free(vm->pci_slots[s].id);
    g_free(vm->pci_slots);
    irq_routing_destroy(vm->irq_routing);
    g_free(vm->supported_cpuid);
    g_clear_pointer(&vm->guest_cpuid, g_free);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    guest_memory_destroy(&vm->mem);
    if (vm->stop_eventfd >= 0)
        close(vm->stop_eventfd);
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    pthread_mutex_destroy(&vm->stop_lock);
    pthread_cond_destroy(&vm->parked_cond);
    pthread_cond_destroy(&vm->pause_cond);
    pthread_mutex_destroy(&vm->pause_lock);
    pthread_mutex_destroy(&vm->vcpus_lock);
    memset(vm, 0, sizeof(*vm));
    vm->vm_fd = -1;
}
