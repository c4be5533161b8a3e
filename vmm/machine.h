/* struct machine: what outlives one boot of the guest. The process owns one:
 * the configuration (changed by hotplug, so that a guest reset rebuilds the
 * same machine), the main loop, the control socket, and the current struct vm
 * (destroyed and re-created on a guest reset). Main loop thread only.
 *
 * machine.c runs the boots (machine_run) and owns the run state that QMP
 * shows (query-status) and changes (stop, cont, system_reset...). */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <json-glib/json-glib.h>
#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"

struct loop;
struct qmp_server;
struct char_backend;
struct snapshot_restore;


/* QEMU's RunState names (qapi/run-state.json) for the states vmm has. */
enum machine_run_state {
    RUN_STATE_PRELAUNCH,        /* --paused: vCPUs created, not yet run (until cont) */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,           /* stop */
    RUN_STATE_SHUTDOWN,         /* the guest powered off or the host ended it; vmm is exiting */
    RUN_STATE_INTERNAL_ERROR,   /* KVM could not run the guest; vmm is exiting */
    RUN_STATE_INMIGRATE,        /* --incoming defer: no VM yet, waiting for migrate-incoming and the source */
};

struct machine {
    struct vm_config *cfg;      /* hotplug records its changes here */
    struct loop *loop;          /* the main loop */
    struct qmp_server *qmp;     /* NULL without --qmp */
    struct vm vm;               /* valid while vm_live */
    bool vm_live;

    enum machine_run_state state;
    /* QMP events go out through this (set by machine_qmp_register); NULL:
     * none. Takes data (an object node, or NULL). */
    void (*emit_event)(struct machine *m, const char *name, JsonNode *data);
    /* Why the host reset the VM, for the RESET event ("host-qmp-system-reset"). */
    const char *host_reason;
    /* -no-shutdown: the guest powered off and vmm waits (poweroff_wait);
     * system_reset then asks for a new boot (reset_after_poweroff), a
     * signal or quit for the end (quit_after_poweroff: either may come
     * before the wait has begun). */
    bool poweroff_wait;
    bool reset_after_poweroff;
    bool quit_after_poweroff;
    /* A signal or quit came while a reset of the VM was already under way
     * (a guest reset or system_reset that the loop has not finished): the
     * VM is not built again, vmm ends (QEMU: a shutdown request beats a
     * pending reset). */
    bool quit_after_reset;

    /* --restore: the snapshot the first boot is built from (then freed);
     * NULL otherwise. Set by main after machine_open. */
    struct snapshot_restore *restore;
    /* Set while a migration runs (vmm/migration.c): machine_run calls it
     * before it destroys the VM, to cancel the migration and join its thread. */
    void (*migration_stop)(struct machine *m);
    uint64_t start_ns;          /* CLOCK_MONOTONIC at main()'s start (else machine_open): restore-to-running counts from it */

    /* Host resources kept across boots (machine_open / machine_close). */
    int kvm_fd;
    struct kvm_caps caps;
    int signal_fd;
    struct char_backend *serial_be;
    struct char_backend *console_be;
};

/* Everything before the first boot: KVM, signals, the main loop, I/O
 * threads, --serial / --console (with --incoming not those two: see
 * machine_open_backends). 0, or a vmm exit status (VMM_EXIT_*) after one
 * line on stderr. The state starts as prelaunch with cfg->paused, else
 * running. */
int machine_open(struct machine *m, struct vm_config *cfg);
/* The host backends of cfg that machine_open leaves to later for an
 * incoming migration (--incoming: the source's config decides): the
 * --object iothreads and the serial and console chardevs. 0 or an exit
 * status (the error logged). */
int machine_open_backends(struct machine *m);
/* Runs boots of the guest until it powers off, the host ends it, or a reset
 * is not to be followed by another boot. Returns the process exit status. */
int machine_run(struct machine *m);
/* Undoes machine_open (not the config, not m->qmp). */
void machine_close(struct machine *m);

const char *machine_run_state_name(enum machine_run_state s);

/* stop: the vCPUs leave KVM_RUN and stay out; when it returns no vCPU is in
 * KVM_RUN. running → paused with a STOP event; otherwise nothing (QEMU's
 * stop). Survives a reset that rebuilds the VM. */
void machine_pause(struct machine *m);
/* cont: prelaunch/paused → running with a RESUME event; running: nothing
 * (as QEMU 7.2). -1 with *err in shutdown / internal-error. */
int machine_resume(struct machine *m, GError **err);
/* system_reset: the VM is rebuilt as on a guest reset (RESET event with
 * guest false), or vmm exits 4 with --reboot exit. After a guest power-off
 * with cfg->no_shutdown: a new boot in prelaunch (cont runs it), as QEMU. */
void machine_reset(struct machine *m);
/* system_powerdown: presses the ACPI power button (GED), POWERDOWN event. */
void machine_powerdown(struct machine *m);
/* Ends the VM from the host (SIGTERM/SIGINT/SIGHUP: "host-signal", Ctrl-A x:
 * "host-ui", QMP quit: "host-qmp-quit"): SHUTDOWN {"guest": false, "reason":
 * reason} goes out now, then the VM stops and vmm exits 0. Nothing when the
 * VM is already stopping for another reason (which has its own event). */
void machine_shutdown(struct machine *m, const char *reason);

/* The lifecycle QMP commands: stop, cont, query-status, system_powerdown,
 * system_reset, query-cpus-fast, query-block, query-pci (machine_qmp.c). */
void machine_qmp_register(struct qmp_server *s, struct machine *m);
/* QEMU 7.2's BlockDeviceInfo of a raw image node (drv "raw" or "file"),
 * shared by query-block and query-named-block-nodes (hotplug_qmp.c). */
JsonObject *machine_qmp_block_info(const char *drv, const char *node_name, const char *path, bool ro, bool direct);

#endif
