/* struct vm: the KVM VM fd, guest memory, buses, interrupt controller, vCPUs,
 * devices, and the lifecycle: created → running → (reset → running) → shut down. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <glib.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "devices/device.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"

struct loop;
struct virtio_console;
struct virtio_mem;

/* The virtio-mem device's id (QMP: /machine/peripheral/vmem0). */
#define VMEM_DEVICE_ID "vmem0"
struct vcpu;
struct ioapic;
struct irq_routing;
struct pci_host;
struct acpi_pm;
struct acpi_pcihp;
struct char_backend;
struct cpu_hotplug;

/* Told on the main loop when the guest has ejected a CPU whose removal
 * vm_cpu_request_remove asked for (its thread is joined by then). */
typedef void (*vm_cpu_removed_fn)(void *opaque, unsigned index);
/* Told on the main loop when the guest's _OST reported on CPU `index`
 * (ACPI source event, status code). */
typedef void (*vm_cpu_ost_fn)(void *opaque, unsigned index, uint32_t event, uint32_t status);
struct vm_cpu_unplug {
    vm_cpu_removed_fn fn;
    void *opaque;
};

/* Why the running VM stopped; handled on the main loop. */
enum vm_stop_reason {
    VM_STOP_NONE,
    VM_STOP_POWEROFF,
    VM_STOP_RESET,
    VM_STOP_TRIPLE_FAULT,
    VM_STOP_DEBUG_EXIT,
    VM_STOP_INTERNAL_ERROR,
    VM_STOP_SIGNAL,             /* the host ends the VM (signal, console quit, QMP quit) */
    VM_STOP_HOST_RESET,         /* QMP system_reset: rebuilt like a guest reset */
};

struct vm {
    const struct vm_config *cfg;
    int kvm_fd;
    struct kvm_caps caps;
    int vm_fd;
    struct guest_memory mem;
    struct bus pio;
    struct bus mmio;
    struct loop *loop;

    /* One slot per possible CPU (cfg->cpus_max), NULL where no CPU is present
     * (not plugged yet, or unplugged): iterate all max_vcpus slots and skip
     * the NULLs. Slots change on the main thread, under vcpus_lock; other
     * threads read them under it. */
    struct vcpu **vcpus;
    unsigned max_vcpus;
    pthread_mutex_t vcpus_lock;
    struct vcpu **spare_vcpus;          /* unplugged vCPUs whose fd KVM keeps (vcpu_unplug) */
    struct cpu_hotplug *cpu_hotplug;    /* with cpus_max > cpus_boot */
    struct vm_cpu_unplug *unplug;       /* per slot: who waits for the guest's eject */
    struct kvm_cpuid2 *supported_cpuid;
    /* What vCPU 0 is given (cfg->guest_cpuid, else built from
     * supported_cpuid); vCPU i gets it with APIC ID i. Snapshots save it. */
    struct kvm_cpuid2 *guest_cpuid;

    bool split_irqchip;
    struct irq_routing *irq_routing;    /* the one owner of KVM's GSI routing table */
    struct ioapic *ioapic;
    struct pci_host *pci;
    struct acpi_pm *acpi_pm;
    struct acpi_pcihp *pcihp;           /* PCI hotplug controller of bus 0 */
    uint32_t pci_hotplug_slots;         /* slots the DSDT describes as hotpluggable */
    struct vm_pci_slot *pci_slots;      /* [PCI_MAX_SLOTS]: the removable devices (disks, NICs) */
    void (*unplugged)(void *opaque, const char *id);    /* see vm_set_unplugged_handler */
    void *unplugged_opaque;
    vm_cpu_ost_fn cpu_ost;              /* see vm_set_cpu_ost_handler */
    void *cpu_ost_opaque;
    struct char_backend *serial_be;     /* owned by the caller, lives across resets */
    struct char_backend *console_be;    /* virtio-console's; the same */
    struct virtio_console *console;     /* its device, or NULL */
    struct virtio_mem *vmem;            /* --memory hotplug_size: the virtio-mem device, or NULL */
    GArray *devices;                    /* struct device */

    /* Set once by the first stop request (any thread); read by the loop. */
    pthread_mutex_t stop_lock;
    enum vm_stop_reason stop_reason;
    int stop_arg;
    int stop_eventfd;
    volatile bool stopping;             /* vCPU threads leave KVM_RUN when set */

    /* Pause (vm_pause/vm_resume): while pause_depth > 0, every vCPU thread
     * parks on pause_cond outside KVM_RUN. Changed and counted under pause_lock. */
    pthread_mutex_t pause_lock;
    pthread_cond_t pause_cond;          /* parked vCPU threads wait here */
    pthread_cond_t parked_cond;         /* vm_pause and vm_start wait here */
    unsigned pause_depth;               /* vm_pause calls not yet resumed */
    unsigned nr_threads;                /* vCPU threads started */
    unsigned nr_parked;                 /* ... parked now */
    unsigned nr_exited;                 /* ... that have ended */

    /* Restored from a snapshot: vCPU 0 logs its first KVM_RUN, in ms
     * since this CLOCK_MONOTONIC time (restore-to-running); 0: not. */
    uint64_t first_run_since_ns;
};

/* Creates the VM described by cfg (KVM VM, memory, irqchip, devices, vCPUs,
 * loaded kernel) without starting it. serial_be (the 16550's) and
 * console_be (virtio-console's, attached to `loop`) may be NULL. */
int vm_create(struct vm *vm, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
              struct loop *loop, struct char_backend *serial_be, struct char_backend *console_be,
              GError **err);
/* vm_create for a restore: guest RAM is a private (copy-on-write) mapping of
 * mem_fd, a snapshot's memory file of cfg->mem_size bytes (or, with mem_fd
 * -1, RAM as cfg asks, for an incoming migration to fill), and nothing is
 * written into it (no firmware, tables or kernel); the vCPUs are created but
 * their state, like the devices', is the snapshot's to load. */
int vm_create_restored(struct vm *vm, const struct vm_config *cfg, int kvm_fd, const struct kvm_caps *caps,
                       struct loop *loop, struct char_backend *serial_be, struct char_backend *console_be,
                       int mem_fd, GError **err);
/* The terminal behind virtio-console may have a new size (SIGWINCH): the
 * device takes it and tells the guest. Main loop thread. */
void vm_console_resized(struct vm *vm);
/* Starts the vCPU threads and returns once each has recorded its thread id;
 * the loop learns of stops via stop_eventfd. With `paused` (one pause level,
 * as vm_pause), the threads park before their first KVM_RUN, until vm_resume. */
int vm_start(struct vm *vm, bool paused, GError **err);
/* Asks the VM to stop (first request wins: true for it). Any thread. */
bool vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int arg);
/* Makes every vCPU thread leave KVM_RUN (finishing the I/O of its last exit
 * inside KVM first) and park. When it returns, no vCPU is in KVM_RUN or in a
 * device handler, and none enters until the matching vm_resume; threads that
 * ended (a stop was requested) count as parked, threads started meanwhile
 * park at once. Nests: the vCPUs run again after as many vm_resume as
 * vm_pause (QMP stop holds one level while the machine is paused; hotplug or
 * a snapshot may take another). Main loop thread, never a vCPU thread. */
void vm_pause(struct vm *vm);
/* Gives back one vm_pause level; at zero the parked threads run again. A
 * resume without a pause is ignored. Any thread. */
void vm_resume(struct vm *vm);
/* Stops and joins all vCPU threads. Main thread. */
void vm_stop_vcpus(struct vm *vm);
/* CPU hotplug (main loop thread, VM running). vm_cpu_add creates (or takes
 * back from an unplug) the vCPU of that index, starts its thread (it waits for
 * the guest's INIT/SIPI) and tells the guest through the GED. 0, or -1 with
 * *err: not a possible CPU, already present, no hotplug controller. */
int vm_cpu_add(struct vm *vm, unsigned index, GError **err);
/* Asks the guest to eject the CPU; `fn` is called once it has (an eject
 * request the guest ignores stays pending, as on real hardware). */
int vm_cpu_request_remove(struct vm *vm, unsigned index, vm_cpu_removed_fn fn, void *opaque, GError **err);
/* Present CPUs: the number of non-NULL slots. */
unsigned vm_nr_vcpus(struct vm *vm);
/* The SIGUSR1 report: vcpu_report_state for every vCPU. Loop thread. */
void vm_report_state(struct vm *vm);
void vm_destroy(struct vm *vm);
/* ---- PCI hotplug (bus 0, ACPI: devices/acpi_pcihp.h). Main loop thread,
 * on a created VM (running or not). ---- */

/* Plugs a virtio-blk / virtio-net PCI device into `slot` (1..31) or the
 * first free slot (-1) and tells the guest (GED event, Device Check). The
 * config is read during the call only. Returns the slot, or -1 with *err. */
int vm_hotplug_disk(struct vm *vm, const struct disk_config *d, int slot, GError **err);
int vm_hotplug_net(struct vm *vm, const struct net_config *n, int slot, GError **err);
/* Asks the guest to release the disk or NIC `id` (Eject Request). -ENODEV
 * when no removable device has that id. The device goes once the guest
 * ejects it (_EJ0): it is unplugged, every range and fd it had is released
 * and then the unplugged handler runs with its id. */
int vm_hotplug_request_unplug(struct vm *vm, const char *id);
/* The slot the disk or NIC `id` is in, or -1. */
int vm_hotplug_slot_of(struct vm *vm, const char *id);
/* Who hears of devices the guest ejected (main loop thread). Call after vm_create. */
void vm_set_unplugged_handler(struct vm *vm, void (*fn)(void *opaque, const char *id), void *opaque);
void vm_set_cpu_ost_handler(struct vm *vm, vm_cpu_ost_fn fn, void *opaque);

/* Interrupt line into the platform's interrupt controller. Any thread. */
void vm_set_irq(void *vm, unsigned gsi, bool level);
/* For devices that ask for machine-level actions. */
struct machine_ctl vm_machine_ctl(struct vm *vm);

#endif
