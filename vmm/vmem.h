/* The machine side of virtio-mem: what outlives one boot. After each
 * vm_create, vmem_machine_attach hooks the new device's plugged-size changes
 * to the QMP event MEMORY_DEVICE_SIZE_CHANGE {"id", "size", "qom-path"}
 * (through machine->emit_event), rate-limited to one a second as QEMU does,
 * and reports the size back to 0 when a guest reset started the region
 * unplugged. No QMP server code here: machine.c links it without one. */
#ifndef VMM_VMEM_H
#define VMM_VMEM_H

#include "vmm/vm.h"

#define VMEM_QOM_PATH "/machine/peripheral/" VMEM_DEVICE_ID

struct machine;

void vmem_machine_attach(struct machine *m);

#endif
