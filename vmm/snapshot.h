/* Snapshot and restore of a whole VM (issue 7).
 *
 * A snapshot is a directory with two files:
 *   DIR/state   the state stream (vmm/state.h): sections "snapshot" (RAM
 *               size, vCPU count), "config" (the vm_config: restore needs no
 *               other command line), "cpuid" (the table vCPU 0 was given:
 *               the restored guest gets exactly it), "devices" (then each device's own
 *               sections, in vm->devices order, each behind a "device"
 *               section naming its type and id), "irqchip" (KVM's PIC and
 *               IOAPIC, only without a split irqchip), one "vcpu" per present
 *               vCPU (vmm/cpu_state.h), "kvmclock"; a CRC-32 at the end
 *   DIR/memory  guest RAM as the guest sees it from GPA 0 (the part above
 *               the 32-bit hole follows the part below it), exactly the RAM
 *               size, zero pages left as holes; restore maps it MAP_PRIVATE.
 *               With virtio-mem the hotplug region follows (its size; only
 *               plugged blocks written), which restore copies into the
 *               region once the device state has plugged the blocks
 *
 * The snapshot is taken with the VM paused (QMP stop first, as Cloud
 * Hypervisor asks) and every disk drained and flushed. Both files are
 * written as DIR/NAME.tmp and renamed at the end: a failed snapshot leaves
 * no half-written file under its final name. */
#ifndef VMM_SNAPSHOT_H
#define VMM_SNAPSHOT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/config.h"

struct vm;
struct machine;
struct qmp_server;
struct state_writer;
struct state_reader;

/* 2: a "cpuid" section follows "config" */
#define SNAPSHOT_VERSION 2
/* config 2: each NIC's backend kind (tap name, or an inherited fd);
 * 3: the PCI slots of disks, NICs and the console, and each disk's block
 * node name (hot-plugged devices keep their slot and names) */
#define SNAPSHOT_CONFIG_VERSION 3

/* The vm_config in a "config" section, and back. Host-side options (--qmp,
 * --paused, --log-level) are not part of it; --serial/--console are, and
 * the restoring command line may change them. So are the NICs' backends: a
 * NIC's tap name, or that it was on an inherited fd (fd=, never the number);
 * a --net on the restoring command line (c->nets before the load: only
 * tap= or fd=, and id=) gives the saved NIC of that id a new backend, and a
 * NIC that was on an fd must get one. */
void snapshot_config_save(struct state_writer *w, const struct vm_config *c);
/* Fills *c (from config_init_defaults) from the section. -1 with *err. */
int snapshot_config_load(struct state_reader *r, struct vm_config *c, GError **err);

/* The CPUID table vCPU 0 was given (c->guest_cpuid's source) in a "cpuid"
 * section, and back into c->guest_cpuid. -1 with *err. */
void snapshot_cpuid_save(struct state_writer *w, const struct kvm_cpuid2 *t);
int snapshot_cpuid_load(struct state_reader *r, struct vm_config *c, GError **err);
/* Whether this host's KVM can give the saved guest CPUID (c->guest_cpuid,
 * the source's) every feature bit it has, with the config's CPU model, CPU
 * count and nesting: -1 with *err (CONFIG_ERROR, one line starting with
 * `what`, naming leaf, register and bits: a CPU model mismatch) when not. */
int snapshot_check_cpuid(const struct vm_config *c, const char *what, GError **err);

/* The state stream of the paused machine (everything but RAM; disks
 * drained and flushed). NULL with *err. */
GBytes *snapshot_state_stream(struct machine *m, GError **err);
/* Writes DIR/state and DIR/memory of the paused machine. -1 with *err. */
int snapshot_save(struct machine *m, const char *dir, GError **err);

/* A snapshot being restored: the stream, read past its config, and the
 * memory file. */
struct snapshot_restore;
/* Checks DIR/state whole (magic, format, checksum), reads its header and
 * config into *c (keeping c's host-side options, and --serial/--console
 * when given: serial_given/console_given), opens DIR/memory and checks its
 * size. Nothing is built yet. NULL with *err (one line). */
struct snapshot_restore *snapshot_restore_open(const char *dir, struct vm_config *c, GError **err);
int snapshot_restore_memory_fd(const struct snapshot_restore *s);
/* The same from a stream in memory (--incoming); `what` starts its errors. */
struct snapshot_restore *snapshot_restore_from_stream(GBytes *stream, struct vm_config *c, const char *what,
                                                     GError **err);
/* --incoming: RAM comes on this connection (s owns it from now on) and the
 * answer goes back on it. */
void snapshot_restore_set_socket(struct snapshot_restore *s, int sock);
/* The connection of an incoming migration, or -1. */
int snapshot_restore_socket(const struct snapshot_restore *s);
/* With a socket: reads the RAM runs into vm's memory, then the final state
 * stream (which replaces the one the connection began with). Else nothing. */
int snapshot_restore_fill_memory(struct snapshot_restore *s, struct vm *vm, GError **err);
/* With a socket: tells the source "OK" (error NULL) or "ERR error". */
void snapshot_restore_answer(struct snapshot_restore *s, const char *error);
/* Loads every remaining section into vm (built by vm_create_restored from
 * the config above, vCPU threads not started). -1 with *err: the VM must
 * not run then. */
int snapshot_restore_load(struct snapshot_restore *s, struct vm *vm, GError **err);
void snapshot_restore_free(struct snapshot_restore *s);

/* Helpers shared with the migration code. */
int write_all_stream(int fd, const void *p, size_t n);
bool snapshot_page_zero(const uint8_t *p);
/* Zero-page detection over guest RAM that skips, without reading them, the
 * pages of anonymous RAM that were never touched (neither present nor
 * swapped, per /proc/self/pagemap): reading those would map the zero page
 * in, 4 KiB or 2 MiB at a time, only to find zeros. Elsewhere (file-backed,
 * memfd RAM) or without pagemap it reads every page. */
struct guest_memory;
typedef struct zero_scan zero_scan;
struct zero_scan *zero_scan_new(const struct guest_memory *gm);
bool zero_scan_page(struct zero_scan *z, const uint8_t *p);
void zero_scan_free(struct zero_scan *z);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(zero_scan, zero_scan_free)

/* x-vmm-snapshot {"dir": DIR}. */
void snapshot_qmp_register(struct qmp_server *s, struct machine *m);

#endif
