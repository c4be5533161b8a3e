/* PCI hotplug over QMP, QEMU's way: block nodes (blockdev-add/-del) and
 * network backends (netdev_add/_del) are made first, then a device over them
 * (device_add virtio-blk-pci / virtio-net-pci), plugged into a free slot of
 * bus 0 and announced through ACPI (devices/acpi_pcihp.h). device_del asks
 * the guest to eject; DEVICE_DELETED follows the guest's _EJ0
 * (vmm/hotplug.h). Each device also appears in qom-list /machine/peripheral
 * (property "drive" or "netdev"). Main loop thread only. */
#ifndef VMM_HOTPLUG_QMP_H
#define VMM_HOTPLUG_QMP_H

struct qmp_server;
struct machine;

/* blockdev-add, blockdev-del, netdev_add, netdev_del, device_add, device_del. */
void hotplug_qmp_register(struct qmp_server *s, struct machine *m);

#endif
