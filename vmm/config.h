/* struct vm_config: the whole description of a VM, plain data.
 *
 * Built by the command-line parser (config_parse_args) and checked by
 * config_validate; every error names the option and the value at fault. */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/block.h"
#include "vmm/qmp.h"

#define VMM_MAX_CPUS 255u   /* xAPIC IDs; x2APIC for more is future work */

/* Process exit status. Debug-exit statuses are (v << 1) | 1, always odd,
 * so everything vmm itself reports is even and never collides with them. */
enum vmm_exit_status {
    VMM_EXIT_POWEROFF = 0,      /* guest powered off (ACPI S5), or SIGTERM/SIGINT */
    VMM_EXIT_CONFIG = 2,        /* bad command line or configuration */
    VMM_EXIT_REBOOT = 4,        /* guest asked for a reset and --reboot=exit */
    VMM_EXIT_TRIPLE_FAULT = 6,  /* guest triple-faulted and --reboot=exit */
    VMM_EXIT_INTERNAL = 8,      /* KVM internal error / unhandled exit (RIP printed) */
    VMM_EXIT_HOST = 10,         /* host problem: no /dev/kvm, out of memory, I/O error */
};

/* Where a character device (--serial, --console) goes. */
enum serial_mode { SERIAL_OFF, SERIAL_STDIO, SERIAL_PTY, SERIAL_FILE, SERIAL_SOCKET };
enum reboot_action { REBOOT_RESTART, REBOOT_EXIT };
enum cpu_model { CPU_MODEL_HOST, CPU_MODEL_BASELINE };
/* Nested virtualization (SVM/VMX in the guest's CPUID): AUTO exposes it
 * where the host KVM can nest, ON insists (refuses to start otherwise). */
enum nested_mode { NESTED_AUTO, NESTED_ON, NESTED_OFF };

/* One --disk: a virtio-blk PCI device. */
struct disk_config {
    char *id;                   /* id=, or "diskN" */
    char *path;
    bool readonly;
    enum block_aio aio;
    enum block_cache cache;
    unsigned num_queues;
    char *serial;               /* NULL: none */
    char *iothread;             /* iothread=: the I/O thread its queues run on; NULL: the main loop */
    int pci_slot;               /* device number on PCI bus 0 (1..31); 0: the first free one */
    char *node_name;            /* the block node it was hot-plugged over (blockdev-add); NULL: none */
};
struct net_user_opts;
/* One --net: a virtio-net PCI device on a tap, or on user networking. */
struct net_config {
    char *id;                   /* id=, or "netN" */
    char *tap;                  /* tap=NAME; NULL with fd= or user */
    int fd;                     /* fd=N: an inherited tap fd; -1 with tap= or user */
    struct net_user_opts *user; /* --net user,...: slirp's settings (devices/net_user.h); NULL for a tap */
    bool mac_set;
    uint8_t mac[6];             /* mac=; else derived from --name and id at boot */
    unsigned num_queues;        /* queue pairs (tap queues) */
    int pci_slot;               /* device number on PCI bus 0 (1..31); 0: the first free one */
    struct tap *backend;        /* opened by main (config_open_nets) before the first boot;
                                 * lives across resets */
};
#define VMM_MAX_NICS 8

#define VMM_MAX_DISKS 16
#define VMM_DISK_MAX_QUEUES 64
#define VMM_DISK_SERIAL_MAX 20
#define VMM_MAX_IOTHREADS 16

struct tap;

struct kvm_cpuid2;

struct vm_config {
    char *name;
    char uuid[37];              /* --uuid, canonical lower case; default all zero (QEMU's) */
    char *kernel;
    char *initrd;
    char *cmdline;

    unsigned cpus_boot;
    unsigned cpus_max;
    /* CPU hotplug: the device_add id of each CPU hot-added and not removed
     * since (index >= cpus_boot), NULL elsewhere. A guest reset keeps them:
     * the next boot has these CPUs present from power-on, as QEMU does. */
    char *cpu_ids[VMM_MAX_CPUS];
    enum cpu_model cpu_model;
    enum nested_mode nested;
    /* A restored or migrated machine: the CPUID table its source gave vCPU 0
     * (struct kvm_cpuid2, g_malloc'd), which every vCPU gets from now on,
     * across guest resets too, with its own APIC ID (cpuid_set_apic_id).
     * NULL: built from this host's KVM and cpu_model (arch/x86/cpuid.h). */
    struct kvm_cpuid2 *guest_cpuid;

    uint64_t mem_size;          /* bytes */
    bool mem_hugepages;
    bool mem_shared;
    /* virtio-mem (hotplug_size=): a region of this many bytes above RAM whose
     * blocks of mem_hotplug_block bytes the guest plugs on request; 0: none.
     * mem_hotplug_requested is the size asked of the guest: changed at run time
     * over QMP (qom-set requested-size) and kept across guest resets. */
    uint64_t mem_hotplug_size;
    uint64_t mem_hotplug_block;
    uint64_t mem_hotplug_requested;

    enum serial_mode serial_mode;
    char *serial_path;          /* SERIAL_FILE, SERIAL_SOCKET */
    enum serial_mode console_mode;  /* virtio-console (hvc0); SERIAL_OFF: none */
    char *console_path;
    int console_pci_slot;       /* the virtio-console's PCI slot (1..31); 0: the first free one */

    bool rng;                   /* a virtio-rng PCI device */
    char **iothreads;           /* --object iothread,id=NAME: the ids, in order */
    unsigned nr_iothreads;
    struct disk_config *disks;
    unsigned nr_disks;
    struct net_config *nets;
    unsigned nr_nets;

    struct qmp_endpoint *qmp;   /* --qmp, in order */
    unsigned nr_qmp;

    bool test_exit;             /* isa-debug-exit port at 0xf4 */
    enum reboot_action reboot;
    bool paused;                /* --paused / -S: vCPUs wait for QMP cont */
    bool no_shutdown;           /* QEMU's -no-shutdown: after a guest power-off vmm stays (state shutdown)
                                 * until QMP system_reset (a new boot, in prelaunch), quit or SIGTERM */
    int log_level;              /* enum log_level */

    /* --restore DIR: the machine comes from the snapshot in DIR (its config
     * section); the command line may then only add host-side options. */
    char *restore_dir;
    /* --incoming URI: the machine comes from a migration source that
     * connects there (vmm/migration.h); the same rules as --restore. */
    char *incoming;
    /* With --incoming, --cpu-model and --memory SIZE are what the source
     * must match (checked on its config, before any guest state is taken):
     * expect_cpu_model >= 0 / expect_mem_size != 0 when given. */
    int expect_cpu_model;
    uint64_t expect_mem_size;
    bool cpu_model_given, memory_given, memory_more_given;   /* memory_more: keys beyond size */   /* --cpu-model / --memory were on the command line */
    bool serial_given, console_given;   /* --serial / --console were on the command line */
    const char *machine_opt;            /* the first machine-shaping option given ("--kernel"...), or NULL */
};

#define CONFIG_ERROR config_error_quark()
GQuark config_error_quark(void);

/* Sets *err to a CONFIG_ERROR with the formatted one-line message; returns
 * -1, so a parser can `return config_fail(err, ...)`. */
int config_fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Fills *c from argv. Returns 0, 1 when --help/--version was printed (exit 0),
 * or -1 with *err set to a one-line message. */
int config_parse_args(struct vm_config *c, int argc, char **argv, GError **err);
int config_validate(const struct vm_config *c, GError **err);
/* CPU index present now: a boot CPU or a hot-added one (cpu_ids). */
bool config_cpu_present(const struct vm_config *c, unsigned index);
/* device_add's driver for vmm's CPUs: "host-x86_64-cpu" with --cpu-model
 * host, "qemu64-x86_64-cpu" with baseline (QEMU's names for the same idea). */
const char *config_cpu_qom_type(const struct vm_config *c);
/* The QOM path of CPU `index`: /machine/unattached/device[INDEX] for a boot
 * CPU (as query-cpus-fast has it), /machine/peripheral/ID for a hot-added
 * one, /machine/peripheral-anon/cpu[INDEX] for one added without an id.
 * NULL when the CPU is not present. Caller frees. */
char *config_cpu_qom_path(const struct vm_config *c, unsigned index);
void config_init_defaults(struct vm_config *c);
void config_clear(struct vm_config *c);
/* Is this NIC on user networking (--net user, or a hot-plugged user netdev)? */
bool config_net_is_user(const struct net_config *n);
/* Opens every --net's tap (each net's backend). -1 with *err (a
 * CONFIG_ERROR line naming the NIC) when one cannot be opened; those
 * already open are closed by config_clear. */
int config_open_nets(struct vm_config *c, GError **err);
void config_print_help(void);

/* Hotplug's changes (vmm/hotplug.c). The arrays are reallocated: pointers
 * into c->disks / c->nets do not survive these calls. */
/* Appends a copy of d (strings duplicated). */
void config_add_disk(struct vm_config *c, const struct disk_config *d);
/* Appends a copy of n (strings duplicated; the backend pointer moves into c). */
void config_add_net(struct vm_config *c, const struct net_config *n);
/* Is `id` the id of a disk or NIC of c? */
bool config_has_device(const struct vm_config *c, const char *id);
/* Deletes the disk or NIC `id`, keeping the others in order. A NIC's tap is
 * not closed but handed to *tap (when tap is non-NULL; else closed). false
 * when there is no such device. */
bool config_remove_device(struct vm_config *c, const char *id, struct tap **tap);
/* "978c6af3-b5f0-4591-a637-630869349030" (any case) into out in lower case.
 * Returns 0 or -EINVAL. */
int config_parse_uuid(const char *s, char out[37]);
/* One --qmp value appended to c->qmp. -1 with *err naming --qmp. */
int config_parse_qmp(struct vm_config *c, const char *arg, GError **err);

/* "512M", "2G", "1048576", "4k": binary suffixes K M G T (case-insensitive,
 * optional trailing B/iB); a bare number is bytes unless default_unit says
 * otherwise (QEMU's -m takes MiB). Returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t default_unit, uint64_t *out);
/* "52:54:00:12:34:56": six two-digit hex bytes joined by ':'. 0 or -1. */
int parse_mac(const char *s, uint8_t mac[6]);

/* virtio-mem limits: the block size is a power of two in [2M, 1G] (Linux
 * plugs in units of at least a pageblock, 2 MiB on x86). */
#define VMEM_BLOCK_DEFAULT (2ULL << 20)
#define VMEM_BLOCK_MIN (2ULL << 20)
#define VMEM_BLOCK_MAX (1ULL << 30)
/* A requested size for the virtio-mem device: NULL when it is valid for
 * cfg, else a one-line reason ("... is above hotplug_size ..."), g_free it. */
char *config_check_requested_size(const struct vm_config *c, uint64_t size);

#endif
