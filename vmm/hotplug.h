/* The machine side of PCI hotplug: what outlives one boot. Every plugged
 * and removed disk or NIC is recorded in the machine's config, so that a
 * guest reset (a new struct vm built from it) has the same devices. After
 * each vm_create, hotplug_vm_created hooks the new VM's eject path (the
 * guest's _EJ0) to the config and to DEVICE_DELETED (through
 * machine->emit_event). No QMP server code here: machine.c links it without
 * one; the commands are in hotplug_qmp.c. Main loop thread only. */
#ifndef VMM_HOTPLUG_H
#define VMM_HOTPLUG_H

#include <stdbool.h>

struct machine;
struct tap;

void hotplug_vm_created(struct machine *m);
/* The device `id` is gone (or never was in a VM): out of the config, the
 * removed hook told, its tap closed unless the hook keeps it, then
 * DEVICE_DELETED {"path": ".../ID/virtio-backend"} and {"device": ID,
 * "path": "/machine/peripheral/ID"}, as QEMU sends them. */
void hotplug_forget_device(struct machine *m, const char *id);
/* Called by hotplug_forget_device after the config lost `id`; tap is its
 * NIC's tap or NULL. Returns true when the tap is kept (a netdev's). */
typedef bool (*hotplug_removed_fn)(struct machine *m, const char *id, struct tap *tap);
void hotplug_set_removed_hook(hotplug_removed_fn fn);

#endif
