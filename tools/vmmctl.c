/* vmmctl: the command-line client of a QMP control socket (vmm's --qmp, or
 * QEMU's -qmp). Speaks plain QMP (QEMU's docs/interop/qmp-spec): reads the
 * greeting, negotiates with qmp_capabilities, sends {"execute", "arguments",
 * "id"} and waits for the "return"/"error" carrying its id, queueing the
 * events that arrive meanwhile. Every wait is bounded by --timeout.
 *
 * Exit codes: 0 ok, 1 the VM answered with a QMP error, 2 usage error,
 * 3 cannot connect / connection lost / not a QMP peer, 4 timeout,
 * 5 remove-device/remove-cpu --wait: the guest did not release the device. */
#include "vmmctl.h"

static const char usage_text[] =
"usage: vmmctl -s SOCKET [--json] [--timeout SECS] COMMAND [ARGS]\n"
"\n"
"Controls a running vmm (or QEMU) through its QMP socket (vmm --qmp unix:PATH,server=on,wait=off).\n"
"\n"
"Options:\n"
"  -s, --socket PATH   the QMP unix socket (default: $VMMCTL_SOCKET)\n"
"  --json              print the raw QMP return value (one line of JSON) instead of text\n"
"  --timeout SECS      bound on every wait: connecting, each reply, wait-event, events\n"
"                      (default 10; remove-device/remove-cpu --wait default 30)\n"
"  -h, --help          this text\n"
"  --version           print vmmctl's version\n"
"\n"
"Commands:\n"
"  status                          run state: running, paused, prelaunch, shutdown...\n"
"  pause | resume                  stop / cont all vCPUs\n"
"  powerdown                       ACPI power button (system_powerdown)\n"
"  reset                           system_reset\n"
"  quit                            end the VM process\n"
"  info                            version, name, uuid, cpus, block devices, PCI devices\n"
"  add-disk PATH [--id ID] [--readonly] [--bus BUS]\n"
"                                  blockdev-add (raw file, node-name ID) + device_add virtio-blk-pci\n"
"  add-net TAP [--id ID] [--mac MAC] [--bus BUS]\n"
"                                  netdev_add tap (id ID) + device_add virtio-net-pci\n"
"  remove-device ID [--wait]       device_del; --wait: until DEVICE_DELETED, then removes\n"
"                                  the disk's block node / the NIC's netdev\n"
"  add-cpu [--id ID]               device_add of the first free slot of query-hotpluggable-cpus\n"
"  remove-cpu ID [--wait]          device_del of a hot-added CPU\n"
"  resize-memory SIZE [--device ID] [--wait]\n"
"                                  qom-set requested-size of a virtio-mem device (the first one\n"
"                                  in /machine/peripheral unless --device); SIZE: bytes or K/M/G/T;\n"
"                                  --wait: until the guest has plugged/unplugged to SIZE\n"
"                                  (MEMORY_DEVICE_SIZE_CHANGE; default 30 s, then exit 4)\n"
"  events [--count N] [QMP-COMMAND [JSON-ARGS]]\n"
"                                  print events as they arrive, one a line: until N events\n"
"                                  within --timeout (else exit 4); without --count, until\n"
"                                  --timeout if given, else until the VM goes away (exit 0);\n"
"                                  with QMP-COMMAND, run it first on the same connection\n"
"  wait-event NAME [--match KEY=VALUE]... [QMP-COMMAND [JSON-ARGS]]\n"
"                                  wait for event NAME (whose data has KEY=VALUE); with\n"
"                                  QMP-COMMAND, run it first on the same connection, so the\n"
"                                  event it causes cannot be missed\n"
"  migrate URI                     live-migrate the VM to URI (tcp:HOST:PORT, unix:PATH; a vmm\n"
"                                  there started with --incoming): a progress line (sent,\n"
"                                  remaining, MiB/s, pass) redrawn in place on a terminal, one\n"
"                                  line per change otherwise, with --json one query-migrate\n"
"                                  object a line; 0 when completed, 1 when failed or cancelled\n"
"                                  (the reason on one line), 4 when still going after --timeout\n"
"                                  (given; vmmctl then sends migrate_cancel and waits until it\n"
"                                  is cancelled: the source runs on)\n"
"  qmp COMMAND [JSON-ARGS]         run any QMP command, print its return value as JSON\n"
"\n"
"Exit codes:\n"
"  0  ok\n"
"  1  the VM answered with a QMP error (its desc is printed on one line)\n"
"  2  usage error\n"
"  3  cannot connect, connection lost, or the peer does not speak QMP\n"
"  4  timeout (no reply, or no such event, within --timeout; migrate: not over by then)\n"
"  5  remove-device/remove-cpu --wait: the guest did not release the device in time\n"
"     (the device stays)\n";

/* ---- commands ---- */

static int cmd_status(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonNode *r = execute_or_die(c, "query-status", NULL);
    if (opt_json) {
        print_json(r);
        return EXIT_OK;
    }
    const char *st = str_member(obj_of(r), "status");
    if (!st)
        die(EXIT_CONNECTION, "query-status returned no status: %s", node_to_string(r));
    printf("%s\n", st);
    return EXIT_OK;
}

/* Commands that map to one argument-less QMP command with an empty return. */
static int cmd_simple(struct conn *c, const char *name, int argc, char **argv)
{
    static const struct { const char *cmd, *qmp; } map[] = {
        { "pause", "stop" }, { "resume", "cont" }, { "powerdown", "system_powerdown" },
        { "reset", "system_reset" }, { "quit", "quit" },
    };
    const char *qmp = NULL;
    for (unsigned i = 0; i < G_N_ELEMENTS(map); i++)
        if (!strcmp(map[i].cmd, name))
            qmp = map[i].qmp;
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 0, 0, "");
    JsonNode *r = execute_or_die(c, qmp, NULL);
    if (opt_json)
        print_json(r);
    return EXIT_OK;
}

static int cmd_qmp(struct conn *c, const char *name, int argc, char **argv)
{
    struct cargs a;
    parse_cmd_args(name, argc, argv, NULL, &a);
    want_pos(name, &a, 1, 2, "COMMAND [JSON-ARGS]");
    JsonNode *args = pos(&a, 1) ? parse_json_args(name, pos(&a, 1)) : NULL;
    struct reply r;
    if (!conn_execute(c, pos(&a, 0), args, &r))
        die_reply(NULL, &r);
    print_json(r.ret);
    return EXIT_OK;
}

static int cmd_events(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--count", .has_arg = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 0, 2, "[--count N] [QMP-COMMAND [JSON-ARGS]]");
    int64_t count = -1;
    if (opts[0].set) {
        char *end;
        count = g_ascii_strtoll(opts[0].val, &end, 10);
        if (*end || count <= 0)
            usage_error("%s: --count wants a positive number, not '%s'", name, opts[0].val);
    }
    JsonNode *args = pos(&a, 1) ? parse_json_args(name, pos(&a, 1)) : NULL;
    if (pos(&a, 0)) {
        struct reply r;
        if (!conn_execute(c, pos(&a, 0), args, &r))
            die_reply(pos(&a, 0), &r);
        reply_clear(&r);
    } else {
        conn_ensure(c);
    }
    /* a monitor (no --count, no --timeout) runs until the VM goes away */
    int64_t deadline = opt_timeout_set || count > 0 ? deadline_after(opt_timeout) : -1;
    for (int64_t seen = 0; count < 0 || seen < count; seen++) {
        JsonNode *ev = NULL;
        enum read_status st = next_event(c, deadline, &ev);
        if (st == READ_TIMEOUT) {
            if (count < 0)
                return EXIT_OK;     /* --timeout without --count: watch that long */
            char *s = fmt_secs(opt_timeout);
            die(EXIT_TIMEOUT, "%" PRId64 " of %" PRId64 " events within %s s", seen, count, s);
        }
        if (st == READ_EOF) {
            if (count < 0)
                return EXIT_OK;     /* the monitor saw the VM go */
            die(EXIT_CONNECTION, "connection closed by the VM after %" PRId64 " of %" PRId64 " events",
                seen, count);
        }
        print_event(ev);
        json_node_unref(ev);
    }
    return EXIT_OK;
}

static int cmd_wait_event(struct conn *c, const char *name, int argc, char **argv)
{
    struct copt opts[] = { { .name = "--match", .has_arg = true, .repeat = true }, { 0 } };
    struct cargs a;
    parse_cmd_args(name, argc, argv, opts, &a);
    want_pos(name, &a, 1, 3, "NAME [--match KEY=VALUE]... [QMP-COMMAND [JSON-ARGS]]");
    for (unsigned i = 0; opts[0].vals && i < opts[0].vals->len; i++) {
        const char *kv = opts[0].vals->pdata[i];
        if (!strchr(kv, '=') || kv[0] == '=')
            usage_error("%s: --match wants KEY=VALUE, not '%s'", name, kv);
    }
    const char *ev_name = pos(&a, 0);
    JsonNode *args = pos(&a, 2) ? parse_json_args(name, pos(&a, 2)) : NULL;
    if (pos(&a, 1)) {
        struct reply r;
        if (!conn_execute(c, pos(&a, 1), args, &r))
            die_reply(pos(&a, 1), &r);
        reply_clear(&r);
    }
    JsonNode *ev = wait_for_event(c, ev_name, opts[0].vals, deadline_after(opt_timeout));
    if (!ev) {
        char *s = fmt_secs(opt_timeout);
        die(EXIT_TIMEOUT, "no %s event within %s s", ev_name, s);
    }
    print_event(ev);
    return EXIT_OK;
}

/* ---- main ---- */

static const struct command {
    const char *name;
    cmd_fn fn;
} commands[] = {
    { "status", cmd_status },
    { "pause", cmd_simple },
    { "resume", cmd_simple },
    { "powerdown", cmd_simple },
    { "reset", cmd_simple },
    { "quit", cmd_simple },
    { "info", cmd_info },
    { "add-disk", cmd_add_disk },
    { "add-net", cmd_add_net },
    { "remove-device", cmd_remove_device },
    { "add-cpu", cmd_add_cpu },
    { "remove-cpu", cmd_remove_cpu },
    { "resize-memory", cmd_resize_memory },
    { "events", cmd_events },
    { "wait-event", cmd_wait_event },
    { "migrate", cmd_migrate },
    { "qmp", cmd_qmp },
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *cmd = NULL;
    GPtrArray *rest = g_ptr_array_new();
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            if (cmd)
                g_ptr_array_add(rest, (gpointer)a);
            only_pos = true;
            continue;
        }
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        if (!only_pos && !strcmp(a, "--version")) {
            printf("vmmctl %s\n", VMM_VERSION);
            return EXIT_OK;
        }
        if (!only_pos && !strcmp(a, "--json")) {
            opt_json = true;
            continue;
        }
        if (!only_pos && (!strcmp(a, "-s") || !strcmp(a, "--socket") || g_str_has_prefix(a, "--socket="))) {
            if (a[1] != '-' || !strchr(a, '=')) {
                if (i + 1 >= argc)
                    usage_error("%s needs a socket path", a);
                opt_socket = argv[++i];
            } else {
                opt_socket = strchr(a, '=') + 1;
            }
            if (!*opt_socket)
                usage_error("empty socket path");
            continue;
        }
        if (!only_pos && (!strcmp(a, "--timeout") || g_str_has_prefix(a, "--timeout="))) {
            const char *v;
            if (strchr(a, '='))
                v = strchr(a, '=') + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                usage_error("--timeout needs a number of seconds");
            char *end;
            double t = g_ascii_strtod(v, &end);
            if (!*v || *end || !(t > 0) || t > 1e6 || isnan(t))
                usage_error("--timeout wants a positive number of seconds, not '%s'", v);
            opt_timeout = t;
            opt_timeout_set = true;
            continue;
        }
        if (!cmd) {
            if (!only_pos && a[0] == '-' && a[1])
                usage_error("unknown option %s (vmmctl --help lists the options)", a);
            cmd = a;
        } else {
            g_ptr_array_add(rest, (gpointer)a);
        }
    }
    if (!cmd)
        usage_error("no command given (vmmctl --help lists them)");
    const struct command *cm = NULL;
    for (unsigned i = 0; i < G_N_ELEMENTS(commands); i++)
        if (!strcmp(commands[i].name, cmd))
            cm = &commands[i];
    if (!cm)
        usage_error("unknown command '%s' (vmmctl --help lists them)", cmd);

    if (!opt_socket)
        opt_socket = g_getenv("VMMCTL_SOCKET");
    if (!opt_socket || !*opt_socket)
        usage_error("no socket: give -s SOCKET (or set VMMCTL_SOCKET)");

    struct conn c = { .fd = -1, .buf = g_string_new(NULL) };
    g_queue_init(&c.events);
    return cm->fn(&c, cmd, (int)rest->len, (char **)rest->pdata);
}
