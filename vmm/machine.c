/* The machine: host resources kept across boots, the boot/run loop, and the
 * run state QMP shows and changes (pause/resume, reset, power button). */
#include "vmm/machine.h"
#include "vmm/vmem.h"
#include "vmm/cpu_qmp.h"
#include "vmm/hotplug.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "devices/char_backend.h"
#include "devices/net_user.h"
#include "vmm/iothread.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/migration.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"

const char *machine_run_state_name(enum machine_run_state s)
{
    switch (s) {
    case RUN_STATE_PRELAUNCH: return "prelaunch";
    case RUN_STATE_RUNNING: return "running";
    case RUN_STATE_PAUSED: return "paused";
    case RUN_STATE_SHUTDOWN: return "shutdown";
    case RUN_STATE_INTERNAL_ERROR: return "internal-error";
    case RUN_STATE_INMIGRATE: return "inmigrate";
    }
    return "?";
}

static void emit(struct machine *m, const char *name, JsonNode *data)
{
    if (m->emit_event)
        m->emit_event(m, name, data);
    else if (data)
        json_node_unref(data);
}

/* {"guest": guest, "reason": reason}: the data of SHUTDOWN and RESET. */
static JsonNode *guest_reason(bool guest, const char *reason)
{
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "guest", guest);
    json_object_set_string_member(o, "reason", reason);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

void machine_pause(struct machine *m)
{
    if (m->state == RUN_STATE_INMIGRATE)
        m->cfg->paused = true;      /* QEMU: no autostart, the VM stays paused once the migration is in */
    if (m->state != RUN_STATE_RUNNING)
        return;
    m->state = RUN_STATE_PAUSED;
    if (m->vm_live)
        vm_pause(&m->vm);
    emit(m, "STOP", NULL);
}

int machine_resume(struct machine *m, GError **err)
{
    switch (m->state) {
    case RUN_STATE_SHUTDOWN:
    case RUN_STATE_INTERNAL_ERROR:
        g_set_error_literal(err, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                            "Resetting the Virtual Machine is required");
        return -1;
    case RUN_STATE_RUNNING:
        return 0;       /* QEMU 7.2: {} and no event */
    case RUN_STATE_INMIGRATE:
        m->cfg->paused = false;     /* QEMU: autostart, the VM runs once the migration is in */
        return 0;
    case RUN_STATE_PRELAUNCH:
    case RUN_STATE_PAUSED:
        break;
    }
    m->state = RUN_STATE_RUNNING;
    if (m->vm_live)
        vm_resume(&m->vm);
    emit(m, "RESUME", NULL);
    return 0;
}

/* -no-shutdown and the guest powered off: vmm waits in machine_run, or is
 * about to (the loop may still be finishing the batch that saw the stop). */
static bool poweroff_pending(struct machine *m)
{
    return m->cfg->no_shutdown &&
           (m->poweroff_wait ||
            (m->vm_live && __atomic_load_n(&m->vm.stop_reason, __ATOMIC_ACQUIRE) == VM_STOP_POWEROFF));
}

void machine_reset(struct machine *m)
{
    if (poweroff_pending(m)) {
        if (!m->reset_after_poweroff && !m->quit_after_poweroff) {
            m->reset_after_poweroff = true;
            m->state = RUN_STATE_PRELAUNCH;     /* QEMU: a reset out of shutdown leaves prelaunch */
            emit(m, "RESET", guest_reason(false, "host-qmp-system-reset"));
        }
        if (m->poweroff_wait)
            loop_quit(m->loop);
        return;
    }
    if (m->vm_live && vm_request_stop(&m->vm, VM_STOP_HOST_RESET, 0))
        m->host_reason = "host-qmp-system-reset";
}

void machine_powerdown(struct machine *m)
{
    if (m->vm_live && m->vm.acpi_pm)
        acpi_pm_ged_event(m->vm.acpi_pm, GED_EVENT_POWER_BUTTON);
    emit(m, "POWERDOWN", NULL);
}

void machine_shutdown(struct machine *m, const char *reason)
{
    if (poweroff_pending(m) && m->vm_live) {
        /* Powered off, not yet waiting: machine_run must not wait then. */
        m->quit_after_poweroff = true;
        m->reset_after_poweroff = false;
        m->state = RUN_STATE_SHUTDOWN;
        emit(m, "SHUTDOWN", guest_reason(false, reason));
        return;
    }
    if (m->vm_live && !vm_request_stop(&m->vm, VM_STOP_SIGNAL, 0)) {
        /* The VM was stopping already. A poweroff, an error or an exit
         * ends vmm with its own event; a reset would build the VM again
         * and the signal or quit would be lost: the reset gives way. */
        enum vm_stop_reason r = __atomic_load_n(&m->vm.stop_reason, __ATOMIC_ACQUIRE);
        if ((r != VM_STOP_RESET && r != VM_STOP_TRIPLE_FAULT && r != VM_STOP_HOST_RESET) ||
            m->cfg->reboot == REBOOT_EXIT || m->quit_after_reset)
            return;
        m->quit_after_reset = true;
    }
    if (m->poweroff_wait)
        m->reset_after_poweroff = false;
    if (!m->vm_live)
        loop_quit(m->loop);
    /* Now, before a reply the caller may send (QEMU's quit: the event first). */
    m->state = RUN_STATE_SHUTDOWN;
    emit(m, "SHUTDOWN", guest_reason(false, reason));
}

/* A vCPU (or the host) asked the VM to stop: the state and the event now,
 * while the loop (and the QMP server on it) still runs; machine_run does
 * the rest once the loop has returned. */
static void on_stop_event(void *opaque, int fd, uint32_t revents)
{
    struct machine *m = opaque;
    (void)revents;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("stop event read: %s", g_strerror(errno));
    bool reboot_exit = m->cfg->reboot == REBOOT_EXIT;
    switch (m->vm.stop_reason) {
    case VM_STOP_POWEROFF:
        m->state = RUN_STATE_SHUTDOWN;
        emit(m, "SHUTDOWN", guest_reason(true, "guest-shutdown"));
        break;
    case VM_STOP_NONE:
    case VM_STOP_SIGNAL:
        break;      /* machine_shutdown sent SHUTDOWN */
    case VM_STOP_RESET:
    case VM_STOP_TRIPLE_FAULT:
        if (m->quit_after_reset)
            break;      /* machine_shutdown sent SHUTDOWN: no new boot */
        if (reboot_exit) {
            m->state = RUN_STATE_SHUTDOWN;
            emit(m, "SHUTDOWN", guest_reason(true, "guest-reset"));
        } else {
            emit(m, "RESET", guest_reason(true, "guest-reset"));
        }
        break;
    case VM_STOP_HOST_RESET:
        if (m->quit_after_reset)
            break;
        if (reboot_exit) {
            m->state = RUN_STATE_SHUTDOWN;
            emit(m, "SHUTDOWN", guest_reason(false, m->host_reason));
        } else {
            emit(m, "RESET", guest_reason(false, m->host_reason));
        }
        break;
    case VM_STOP_INTERNAL_ERROR:
        if (m->state == RUN_STATE_RUNNING)
            emit(m, "STOP", NULL);
        m->state = RUN_STATE_INTERNAL_ERROR;
        break;
    case VM_STOP_DEBUG_EXIT:
        break;
    }
    loop_quit(m->loop);
}

static void on_signal(void *opaque, int fd, uint32_t revents)
{
    struct machine *m = opaque;
    (void)revents;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGUSR1) {
        if (m->vm_live)
            vm_report_state(&m->vm);
        return;
    }
    if (si.ssi_signo == SIGWINCH) {
        if (m->vm_live)
            vm_console_resized(&m->vm);
        return;
    }
    log_info("got signal %u, stopping the guest", si.ssi_signo);
    machine_shutdown(m, "host-signal");
}

static void on_console_quit(void *opaque)
{
    machine_shutdown(opaque, "host-ui");
}

/* The host side of --serial or --console (what = "serial", "console"),
 * kept across resets. *be stays NULL when the device is off. */
static int open_chardev(struct machine *m, const char *what, enum serial_mode mode, const char *path,
                        struct char_backend **be)
{
    g_autoptr(GError) err = NULL;
    if (mode == SERIAL_OFF)
        return 0;
    *be = char_backend_open(mode, path, &err);
    if (!*be) {
        log_error("--%s: %s", what, err->message);
        return -1;
    }
    char_backend_attach(*be, m->loop, on_console_quit, m);
    if (char_backend_pty_path(*be))
        fprintf(stderr, "vmm: %s: %s\n", what, char_backend_pty_path(*be));
    return 0;
}

int machine_open(struct machine *m, struct vm_config *cfg)
{
    g_autoptr(GError) err = NULL;
    memset(m, 0, sizeof(*m));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m->start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    m->cfg = cfg;
    m->kvm_fd = -1;
    m->signal_fd = -1;
    m->state = cfg->paused ? RUN_STATE_PRELAUNCH : RUN_STATE_RUNNING;
    if (cfg->name)
        prctl(PR_SET_NAME, cfg->name);

    const char *kvm_path = getenv("VMM_KVM_DEVICE");
    m->kvm_fd = kvm_open(kvm_path ? kvm_path : "/dev/kvm", &m->caps, &err);
    if (m->kvm_fd < 0) {
        log_error("%s", err->message);
        return VMM_EXIT_HOST;
    }
    if (cfg->cpus_max > (unsigned)m->caps.max_vcpus) {
        log_error("--cpus: %u vCPUs is above this host's KVM limit of %d", cfg->cpus_max, m->caps.max_vcpus);
        return VMM_EXIT_CONFIG;
    }

    signal(SIGPIPE, SIG_IGN);
    vcpu_init_signals();
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);  /* the vCPU state report */
    sigaddset(&sigs, SIGWINCH); /* the terminal's new size for virtio-console */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);    /* inherited by every thread */
    m->signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    m->loop = loop_new(&err);
    if (!m->loop) {
        log_error("%s", err->message);
        return VMM_EXIT_HOST;
    }
    loop_add_fd(m->loop, m->signal_fd, POLLIN, on_signal, m);
    /* An incoming migration's machine is the source's: its I/O threads and
     * chardevs are known once the stream's config is in. */
    return cfg->incoming ? 0 : machine_open_backends(m);
}

int machine_open_backends(struct machine *m)
{
    g_autoptr(GError) err = NULL;
    struct vm_config *cfg = m->cfg;
    for (unsigned i = 0; i < cfg->nr_iothreads; i++)
        if (!iothread_new(cfg->iothreads[i], &err)) {
            log_error("--object iothread,id=%s: %s", cfg->iothreads[i], err->message);
            return VMM_EXIT_HOST;
        }
    if (open_chardev(m, "serial", cfg->serial_mode, cfg->serial_path, &m->serial_be) < 0 ||
        open_chardev(m, "console", cfg->console_mode, cfg->console_path, &m->console_be) < 0)
        return VMM_EXIT_CONFIG;
    return 0;
}

void machine_close(struct machine *m)
{
    char_backend_close(m->console_be);
    char_backend_close(m->serial_be);
    iothread_free_all();
    net_user_detach_loop(m->loop);  /* user-networking backends outlive the loop (config_clear frees them) */
    if (m->loop)
        loop_free(m->loop);
    if (m->signal_fd >= 0)
        close(m->signal_fd);
    if (m->kvm_fd >= 0)
        close(m->kvm_fd);
    m->loop = NULL;
    m->serial_be = m->console_be = NULL;
    m->signal_fd = m->kvm_fd = -1;
}

static int exit_status_for_error(const GError *e)
{
    return e->domain == CONFIG_ERROR ? VMM_EXIT_CONFIG : VMM_EXIT_HOST;
}

int machine_run(struct machine *m)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        int cr = m->restore ? vm_create_restored(&m->vm, m->cfg, m->kvm_fd, &m->caps, m->loop, m->serial_be,
                                                 m->console_be, snapshot_restore_memory_fd(m->restore), &err)
                            : vm_create(&m->vm, m->cfg, m->kvm_fd, &m->caps, m->loop, m->serial_be, m->console_be,
                                        &err);
        if (cr == 0 && m->restore) {
            int lr = migration_incoming_load(m, &err);
            if (lr == 1) {          /* quit or a signal while the migration came in */
                snapshot_restore_answer(m->restore, "the destination was told to quit");
                vm_destroy(&m->vm);
                return 0;
            }
            if (lr < 0)
                cr = -1;
        }
        if (m->restore)     /* an incoming migration's source waits for this */
            snapshot_restore_answer(m->restore, cr < 0 ? err->message : NULL);
        if (cr < 0) {
            log_error("%s", err->message);
            /* A snapshot that does not load is the user's input
             * (CONFIG_ERROR: exit 2), and the VM never ran. */
            int st = exit_status_for_error(err);
            vm_destroy(&m->vm);
            return st;
        }
        if (m->restore) {
            snapshot_restore_free(m->restore);
            m->restore = NULL;
            m->vm.first_run_since_ns = m->start_ns;
        }
        vmem_machine_attach(m);
        hotplug_vm_created(m);
        cpu_qmp_vm_created(m);
        m->vm_live = true;
        m->host_reason = NULL;
        int efd = m->vm.stop_eventfd;
        loop_add_fd(m->loop, efd, POLLIN, on_stop_event, m);
        /* Paused (stop) or not yet started (--paused) survives a reset. */
        if (vm_start(&m->vm, m->state != RUN_STATE_RUNNING, &err) < 0)
            log_error("%s", err->message);
        int lr = loop_run(m->loop);
        if (m->migration_stop)
            m->migration_stop(m);
        loop_remove_fd(m->loop, efd);
        vm_stop_vcpus(&m->vm);
        m->vm_live = false;
        /* Work the devices deferred to the loop (virtio resets, kicks) runs
         * now, while the devices and guest memory it touches still exist. */
        loop_run_calls(m->loop);

        enum vm_stop_reason reason = m->vm.stop_reason;
        int arg = m->vm.stop_arg;
        vm_destroy(&m->vm);
        if (lr < 0)
            return VMM_EXIT_HOST;
        switch (reason) {
        case VM_STOP_POWEROFF:
            log_info("guest powered off");
            if (!m->cfg->no_shutdown)
                return VMM_EXIT_POWEROFF;
            /* QEMU's -no-shutdown: stay, in state shutdown, until
             * system_reset (a new boot), quit or a signal, unless one of
             * them came already while the VM was being taken down. */
            if (!m->reset_after_poweroff && !m->quit_after_poweroff) {
                m->poweroff_wait = true;
                lr = loop_run(m->loop);
                m->poweroff_wait = false;
                if (lr < 0)
                    return VMM_EXIT_HOST;
            }
            m->quit_after_poweroff = false;
            if (!m->reset_after_poweroff)
                return VMM_EXIT_POWEROFF;
            m->reset_after_poweroff = false;
            break;      /* a new boot, in prelaunch unless cont came meanwhile */
        case VM_STOP_SIGNAL:
        case VM_STOP_NONE:
            return VMM_EXIT_POWEROFF;
        case VM_STOP_DEBUG_EXIT:
            return ((arg << 1) | 1) & 0xff;
        case VM_STOP_INTERNAL_ERROR:
            return VMM_EXIT_INTERNAL;
        case VM_STOP_RESET:
        case VM_STOP_TRIPLE_FAULT:
        case VM_STOP_HOST_RESET: {
            const char *what = reason == VM_STOP_TRIPLE_FAULT ? "guest triple-faulted"
                               : reason == VM_STOP_RESET      ? "guest reset"
                                                              : "system_reset";
            if (m->quit_after_reset) {
                log_info("%s, then a signal or quit: not restarting", what);
                return VMM_EXIT_POWEROFF;
            }
            if (m->cfg->reboot == REBOOT_EXIT) {
                log_info("%s; exiting (--reboot exit)", what);
                return reason == VM_STOP_TRIPLE_FAULT ? VMM_EXIT_TRIPLE_FAULT : VMM_EXIT_REBOOT;
            }
            log_info("%s; restarting", what);
            /* QEMU: a reset while not running leaves the VM in prelaunch. */
            if (m->state == RUN_STATE_PAUSED)
                m->state = RUN_STATE_PRELAUNCH;
            break;
        }
        }
    }
}
