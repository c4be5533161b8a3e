/* The control-socket side of virtio-mem (QEMU 7.2's shapes):
 *   qom-set / qom-get /machine/peripheral/vmem0 requested-size (read-write),
 *     size (plugged), max-size, block-size, memaddr (read-only);
 *   query-memory-devices: [{"type": "virtio-mem", "data": {...}}];
 *   (the MEMORY_DEVICE_SIZE_CHANGE event is vmm/vmem.c's).
 * requested-size lands in the configuration, so it holds across guest
 * resets, and in the live device, which tells the guest. */
#ifndef VMM_VMEM_QMP_H
#define VMM_VMEM_QMP_H

struct qmp_server;
struct machine;

void vmem_qmp_register(struct qmp_server *s, struct machine *m);
/* Once m->cfg is the machine's (after an incoming migration's config, at
 * once otherwise): the virtio-mem device's QOM properties, when it has one. */
void vmem_qmp_add_objects(struct machine *m);

#endif
