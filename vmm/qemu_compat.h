/* The QEMU-compatible front end (issue 6): libvirt's QEMU driver runs vmm as
 * if it were qemu-system-x86_64. This turns its QEMU-style argv into the same
 * struct vm_config the native CLI builds (vmm/config.c), runs the capability
 * probe (-machine none ... -daemonize), and adds the QMP commands libvirt's
 * probe, launch and reconnect need (qemu_compat_qmp_register).
 *
 * See /work/shared/research/libvirt-contract.md (§3, §4.2, §6) for the argv
 * and QMP this serves; README "QEMU compatibility" for what is accepted,
 * ignored (and why) and refused. */
#ifndef VMM_QEMU_COMPAT_H
#define VMM_QEMU_COMPAT_H

#include <glib.h>
#include <stdbool.h>

#include "vmm/config.h"

struct qmp_server;
struct machine;

/* What the QEMU argv says beyond struct vm_config. */
struct qemu_compat {
    bool probe;                 /* -machine none: no guest, QMP only */
    bool daemonize;             /* -daemonize */
    char *pidfile;              /* -pidfile */
    bool no_shutdown;           /* -no-shutdown */
    bool cpu_migratable;        /* -cpu host,migratable=on (QEMU's default for host/max) */
    char *machine_type;         /* as given: pc-i440fx-7.2, pc, none */
    /* Chardev labels and device ids, for query-chardev and qom-list. */
    char *monitor_label;        /* the -mon/-qmp chardev: "charmonitor", "compat_monitor0" */
    char *serial_label, *serial_dev_id;     /* -chardev ID + -device isa-serial,id= */
    char *console_label, *console_dev_id;   /* -chardev ID + -device virtconsole,id= */
    char *vserial_dev_id;       /* -device virtio-serial-pci,id= */
    /* The -blockdev nodes and -netdev backends, in argv order: the hotplug
     * registry (vmm/hotplug_qmp.c) holds them like blockdev-add's and
     * netdev_add's, so device_del + blockdev-del / netdev_del remove a disk or
     * NIC given at launch as QEMU does. */
    GPtrArray *blockdevs;       /* struct qemu_compat_node * */
    GPtrArray *netdevs;         /* struct qemu_compat_netdev * */
};

struct qemu_compat_node {
    char *name;                 /* node-name */
    char *driver;               /* file, host_device, raw */
    char *filename;             /* the image (a raw node: its file node's) */
    char *file;                 /* raw: the node below; NULL for file/host_device */
    bool read_only, direct;
    enum block_aio aio;
};

struct qemu_compat_netdev {
    char *id;                   /* -netdev id= */
    char *device;               /* the -device virtio-net-pci id= over it */
};

/* True when argv is QEMU-style: argv[0]'s basename is qemu-system-x86_64, or
 * the first argument after any leading -S is a single-dash option of two or
 * more letters (-name, -machine, -no-user-config...), which the native CLI
 * (--long options, -S/-h/-V) never has. */
bool qemu_compat_wanted(int argc, char **argv);

/* Fills *c (from config_init_defaults) and *q from a QEMU-style argv.
 * Returns 0, 1 when -version was printed (exit 0), or -1 with *err a
 * one-line message naming the option at fault. */
int qemu_compat_parse(struct vm_config *c, struct qemu_compat *q, int argc, char **argv, GError **err);
void qemu_compat_clear(struct qemu_compat *q);

/* The reason an option, key or value is accepted and ignored, or NULL when it
 * is not in the table (opt "-device" with key "driver" names a device). */
const char *qemu_compat_ignored(const char *opt, const char *key, const char *value);
/* The table, for the README and tests: calls fn for every entry. */
void qemu_compat_foreach_ignored(void (*fn)(const char *opt, const char *key, const char *value,
                                            const char *reason, void *opaque), void *opaque);

/* -daemonize: forks. The parent waits until the child calls
 * qemu_compat_daemon_ready and then exits 0 (or with the child's status when
 * the child exits first); the child returns 0 from here in a new session.
 * -1 with *err when fork or pipe fail. */
int qemu_compat_daemonize(GError **err);
/* In the child (after the QMP socket listens): writes the pidfile (when
 * given), points fds 0-2 at /dev/null and releases the parent. Without
 * -daemonize only the pidfile. -1 with *err when the pidfile cannot be
 * written. */
int qemu_compat_daemon_ready(const struct qemu_compat *q, GError **err);
/* Removes the pidfile this process wrote. */
void qemu_compat_cleanup(const struct qemu_compat *q);

/* The probe/launch/reconnect commands libvirt needs that other modules do
 * not register: query-target, query-kvm, query-machines,
 * query-cpu-definitions, qom-list-types, device-list-properties,
 * qom-list-properties, query-command-line-options,
 * query-migrate-capabilities, migrate-set-capabilities, query-qmp-schema,
 * query-chardev, query-jobs (query-named-block-nodes is hotplug_qmp.c's, which
 * gets the -blockdev nodes and -netdev backends from here); and qom-list/qom-get
 * (vmm/qom.c) with the boot devices under /machine/peripheral and the boot
 * vCPUs' migratable. q must outlive the server. */
void qemu_compat_qmp_register(struct qmp_server *s, struct machine *m, const struct qemu_compat *q);

#endif
