/* CPU hotplug over QMP, in QEMU 7.2's shapes (checked against its replies
 * on q35 with -smp 1,maxcpus=3): query-hotpluggable-cpus, and device_add /
 * device_del of CPUs through the device_qmp dispatcher. Each possible CPU
 * is a slot {"socket-id": 0, "core-id": INDEX, "thread-id": 0} (vmm's CPUID
 * topology: one socket, a core per vCPU); the driver is the CPU model's QOM
 * type. DEVICE_DELETED {"device": ID, "path": QOM path} follows the guest's
 * eject. ACPI_DEVICE_OST {"info": ACPIOSTInfo} follows every _OST the
 * guest runs on a CPU device (Linux: after each Notify it handled), and
 * query-acpi-ospm-status lists every possible CPU's last one (QEMU's
 * ACPIOSTInfo: device (absent without an id or once ejected), slot (the
 * index as a string), slot-type "CPU", source, status). Only CPUs added with device_add can be removed. Main loop thread. */
#ifndef VMM_CPU_QMP_H
#define VMM_CPU_QMP_H

struct qmp_server;
struct machine;

/* The QOM names of the CPUs (config_cpu_qom_type, config_cpu_qom_path) are
 * in config.h, where query-cpus-fast finds them without this module. */
void cpu_qmp_register(struct qmp_server *s, struct machine *m);
/* A new VM (boot, reset): its _OST reports go to ACPI_DEVICE_OST. */
void cpu_qmp_vm_created(struct machine *m);

#endif
