/* Live migration between vmm processes (pre-copy). The source (QMP
 * `migrate {"uri": URI}`) sends the machine's config, then RAM while the VM
 * runs (KVM's dirty log OR'd with vmm's own dirty bitmap says what to send
 * again), then pauses it, sends the rest of RAM and the state stream of a
 * snapshot (vmm/snapshot.h), and waits for the destination's answer: "OK" →
 * the source exits 0; anything else, a broken connection or migrate_cancel →
 * the source runs on as before (MIGRATION failed / cancelled). The
 * destination (`vmm --incoming URI`) accepts one connection, builds the
 * machine from the config, fills RAM, loads every section, answers, and runs.
 *
 * Wire format (integers LE): "VMMMIGR1", u64 length, a state stream with the
 * "snapshot", "config" and "cpuid" sections only; RAM runs (u64 offset into
 * RAM as the guest sees it from GPA 0, then from the end of RAM into the
 * virtio-mem hotplug region, plugged blocks only; u64 length, the bytes; a
 * page may come several times, the last copy wins),
 * ended by offset ~0 / length 0; u64 length, the whole state stream; then
 * the destination sends one line, "OK" or "ERR <message>".
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
/* Reads the state stream's header and config from a connection accepted on
 * uri; *c gets the source's config (as snapshot_restore_open). NULL with
 * *err (CONFIG_ERROR: exit 2). */
struct snapshot_restore *migration_incoming_fd(int fd, const char *uri, struct vm_config *c, GError **err);
/* machine_run, once vm_create_restored has built the VM of m->restore:
 * fills RAM and loads every section. An incoming migration's RAM and final
 * state are read on a thread of their own while the main loop goes on
 * serving QMP (query-status "inmigrate", query-migrate {"status":
 * "active"}, cont as QEMU's autostart, quit or SIGTERM end it); the state
 * is then loaded on the main loop thread. 0; -1 with *err; 1 when vmm was
 * told to quit meanwhile (the VM must not run). */
int migration_incoming_load(struct machine *m, GError **err);
/* Listens on uri on m's loop (non-blocking; the first connection accepted
 * ends loop_run): `--incoming URI` at start-up, and QMP migrate-incoming
 * {"uri"} for `--incoming defer` (state inmigrate only). -1 with *err
 * (CONFIG_ERROR) when it cannot listen. */
int migration_incoming_listen(struct machine *m, const char *uri, GError **err);
/* After that loop_run: the connection accepted (and *uri), or -1 when none
 * came (quit, a signal).
 * Returns that connection (and *uri), or -1 when none came. */
int migration_incoming_deferred(const char **uri);
/* --incoming defer ended (quit, a signal) while migrate-incoming still
 * listened: closes that socket and removes a unix one's path. */
void migration_incoming_deferred_abandon(struct machine *m);
/* The source side (main loop thread): connects and starts the migration
 * thread, which sends RAM while the VM runs (pass 0: all of it; then the
 * pages KVM's dirty log and vmm's own bitmap show written, pass after pass,
 * until what is left fits the downtime limit at the rate seen, or 30
 * passes), then has the main loop pause the VM and take its state, sends the
 * rest and the state and waits for the answer. -1 with *err when it cannot
 * start (nothing changed); later failures end in MIGRATION failed with the
 * source running on as it was; success stops the VM and vmm exits 0. */
int migration_migrate(struct machine *m, const char *uri, GError **err);
/* migrate_cancel: the migration in flight fails ("cancelled"); none: nothing. */
int migration_cancel(struct machine *m);
/* migrate, query-migrate, migrate_cancel, migrate-set-parameters. */
void migration_qmp_register(struct qmp_server *s, struct machine *m);

#endif
