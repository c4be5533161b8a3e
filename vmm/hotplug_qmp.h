/* PCI hotplug over QMP, QEMU's way: block nodes (blockdev-add/-del) and
 * network backends (netdev_add/_del) are made first, then a device over them
 * (device_add virtio-blk-pci / virtio-net-pci), plugged into a free slot of
 * bus 0 and announced through ACPI (devices/acpi_pcihp.h). device_del asks
 * the guest to eject; DEVICE_DELETED follows the guest's _EJ0
 * (vmm/hotplug.h). Each device also appears in qom-list /machine/peripheral
 * (property "drive" or "netdev"). Main loop thread only. */
#ifndef VMM_HOTPLUG_QMP_H
#define VMM_HOTPLUG_QMP_H

#include <stdbool.h>

#include "vmm/config.h"

struct qmp_server;
struct machine;

/* Before hotplug_qmp_register: a block node or network backend a disk or NIC
 * given at launch sits on (the QEMU-style argv's -blockdev / -netdev; below:
 * the node a raw node is over; device: the NIC's id). hotplug_qmp_register
 * ties the config's disks (by node_name) and NICs to them, and gives a
 * --disk / --net without one a node or netdev named by its id, so that
 * device_del, blockdev-del and netdev_del work on boot-time devices as on
 * hot-added ones. */
void hotplug_qmp_boot_node(const char *name, const char *driver, const char *filename, const char *below,
                           bool readonly, bool direct, enum block_aio aio);
void hotplug_qmp_boot_netdev(const char *id, const char *device);
/* blockdev-add, blockdev-del, netdev_add, netdev_del, device_add, device_del,
 * query-named-block-nodes. */
void hotplug_qmp_register(struct qmp_server *s, struct machine *m);
/* Once m->cfg is the machine's (after an incoming migration's config, at
 * once otherwise): its disks and NICs into the registry and QOM. */
void hotplug_qmp_add_boot_devices(struct machine *m);

#endif
