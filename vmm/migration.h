/* Migration between vmm processes, first step: stop-and-copy (no pre-copy
 * yet). The source (QMP `migrate {"uri": URI}`) pauses the VM, sends the
 * state stream of a snapshot (vmm/snapshot.h) and then RAM, and waits for
 * the destination's answer; "OK" → the source exits 0, anything else (or a
 * broken connection) → the source runs on as before and `migrate` fails.
 * The destination (`vmm --incoming URI`) accepts one connection, builds the
 * machine from the stream's config, fills RAM, loads every section, answers,
 * and runs.
 *
 * Wire format: "VMMMIGR1", u64 length of the state stream, the stream (its
 * own header, sections and CRC-32), then RAM runs (u64 offset, u64 length,
 * the bytes; zero pages are not sent) ended by offset ~0 / length 0; then
 * the destination sends one line "OK" or "ERR <message>". Integers LE.
 *
 * URIs: tcp:HOST:PORT, unix:PATH. */
#ifndef VMM_MIGRATION_H
#define VMM_MIGRATION_H

#include <glib.h>

#include "vmm/config.h"

struct machine;
struct qmp_server;
struct snapshot_restore;

/* 0 when uri is one vmm can listen on / connect to, else -1 with *err. */
int migration_check_uri(const char *uri, GError **err);
/* --incoming: listens on uri, accepts one connection and reads the state
 * stream from it; *c gets its config (as snapshot_restore_open). NULL with
 * *err (CONFIG_ERROR: exit 2). Blocks until the source connects. */
struct snapshot_restore *migration_incoming(const char *uri, struct vm_config *c, GError **err);
/* The source side; main loop thread, synchronous. -1 with *err (the VM runs
 * on as it did). On success the VM is stopped and vmm exits 0. */
int migration_migrate(struct machine *m, const char *uri, GError **err);
/* migrate, query-migrate. */
void migration_qmp_register(struct qmp_server *s, struct machine *m);

#endif
