/* parse_size, config_parse_args and config_validate. Every error must be a
 * CONFIG_ERROR whose message starts with the option at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "devices/tap.h"
#include <arpa/inet.h>

#include "devices/net_user.h"
#include "vmm/config.h"
#include "vmm/log.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define TIB (1ULL << 40)

static void test_parse_size_good(void **state)
{
    static const struct { const char *s; uint64_t unit; uint64_t want; } ok[] = {
        { "512M", MIB, 512 * MIB },     { "2G", MIB, 2 * GIB },         { "1T", MIB, TIB },
        { "4k", MIB, 4 * KIB },         { "4K", 1, 4 * KIB },           { "1048576", 1, 1048576 },
        { "1048576", MIB, TIB },        { "512", MIB, 512 * MIB },      { "512MB", MIB, 512 * MIB },
        { "512MiB", MIB, 512 * MIB },   { "2gib", 1, 2 * GIB },         { "7B", MIB, 7 },
        { "0", MIB, 0 },                { "16777215T", 1, 16777215 * TIB },
        { "18446744073709551615", 1, UINT64_MAX },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        uint64_t v = 1;
        int r = parse_size(ok[i].s, ok[i].unit, &v);
        if (r != 0 || v != ok[i].want)
            fail_msg("parse_size(\"%s\", %" PRIu64 ") = %d, %" PRIu64 "; want %" PRIu64, ok[i].s, ok[i].unit,
                     r, v, ok[i].want);
    }
}

static void test_parse_size_bad(void **state)
{
    static const struct { const char *s; int want; } bad[] = {
        { "12Q", -EINVAL }, { "-1", -EINVAL }, { "", -EINVAL }, { "1.5G", -EINVAL }, { "G", -EINVAL },
        { " 1G", -EINVAL }, { "1G ", -EINVAL }, { "1Gx", -EINVAL }, { "1BB", -EINVAL }, { "1iB", -EINVAL },
        { "+1", -EINVAL }, { "1MM", -EINVAL },
        { "16777216T", -ERANGE }, { "17179869184G", -ERANGE }, { "18446744073709551616", -ERANGE },
        { "99999999999999999999999", -ERANGE }, { "18446744073709551615K", -ERANGE },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        uint64_t v = 42;
        int r = parse_size(bad[i].s, MIB, &v);
        if (r != bad[i].want || v != 42)
            fail_msg("parse_size(\"%s\") = %d (value %" PRIu64 "); want %d and no value", bad[i].s, r, v,
                     bad[i].want);
    }
    uint64_t v = 42;
    assert_int_equal(parse_size(NULL, MIB, &v), -EINVAL);
}

/* Parses "vmm" + args into *c (fresh defaults). Returns config_parse_args's result. */
static int parse_v(struct vm_config *c, GError **err, const char *const *args)
{
    config_init_defaults(c);
    g_autoptr(GPtrArray) v = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(v, g_strdup("vmm"));
    for (; *args; args++)
        g_ptr_array_add(v, g_strdup(*args));
    int argc = (int)v->len;
    g_ptr_array_add(v, NULL);
    /* getopt permutes argv: hand it a copy and keep the strings to free. */
    g_autofree char **argv = g_memdup2(v->pdata, v->len * sizeof(char *));
    return config_parse_args(c, argc, argv, err);
}
#define PARSE(c, err, ...) parse_v(c, err, (const char *const[]){ __VA_ARGS__, NULL })

static void expect_ok(struct vm_config *c, const char *const *args)
{
    g_autoptr(GError) err = NULL;
    int r = parse_v(c, &err, args);
    if (r != 0)
        fail_msg("%s: %s", args[0] ? args[0] : "(no options)", err ? err->message : "(no error)");
}
#define OK(c, ...) expect_ok(c, (const char *const[]){ __VA_ARGS__, NULL })

/* Parsing must fail with a one-line CONFIG_ERROR that starts with `prefix`. */
static void expect_err(const char *prefix, const char *const *args)
{
    struct vm_config c;
    g_autoptr(GError) err = NULL;
    int r = parse_v(&c, &err, args);
    if (r != -1 || !err)
        fail_msg("%s %s: accepted, want an error naming %s", args[0], args[1] ? args[1] : "", prefix);
    assert_true(err->domain == CONFIG_ERROR);
    if (!g_str_has_prefix(err->message, prefix) || strchr(err->message, '\n'))
        fail_msg("%s %s: message \"%s\" does not start with \"%s\"", args[0], args[1] ? args[1] : "",
                 err->message, prefix);
    config_clear(&c);
}
#define ERR(prefix, ...) expect_err(prefix, (const char *const[]){ __VA_ARGS__, NULL })

static void test_cpus(void **state)
{
    struct vm_config c;
    OK(&c, "--cpus", "4");
    assert_int_equal(c.cpus_boot, 4);
    assert_int_equal(c.cpus_max, 4);
    config_clear(&c);
    OK(&c, "--cpus", "boot=2,max=8");
    assert_int_equal(c.cpus_boot, 2);
    assert_int_equal(c.cpus_max, 8);
    config_clear(&c);
    OK(&c, "--cpus", "3,max=6");
    assert_int_equal(c.cpus_boot, 3);
    assert_int_equal(c.cpus_max, 6);
    config_clear(&c);
    OK(&c, "--cpus", "max=8");
    assert_int_equal(c.cpus_boot, 1);
    assert_int_equal(c.cpus_max, 8);
    config_clear(&c);
    OK(&c, "--cpus=2");
    assert_int_equal(c.cpus_boot, 2);
    config_clear(&c);

    ERR("--cpus", "--cpus", "two");
    ERR("--cpus", "--cpus", "2x");
    ERR("--cpus", "--cpus", "-1");
    ERR("--cpus", "--cpus", "boot=");
    ERR("--cpus", "--cpus", "2,max");
    ERR("--cpus", "--cpus", "sockets=2");
    ERR("--cpus", "--cpus", "99999999999999999999");
    ERR("--cpus", "--cpus", "2,=4");
}

static void test_memory(void **state)
{
    struct vm_config c;
    OK(&c, "--memory", "1G");
    assert_int_equal(c.mem_size, GIB);
    assert_false(c.mem_hugepages);
    assert_false(c.mem_shared);
    config_clear(&c);
    OK(&c, "--memory", "2048");
    assert_int_equal(c.mem_size, 2 * GIB);     /* a bare number is MiB */
    config_clear(&c);
    OK(&c, "--memory", "size=2G,hugepages=on,shared=yes");
    assert_int_equal(c.mem_size, 2 * GIB);
    assert_true(c.mem_hugepages);
    assert_true(c.mem_shared);
    config_clear(&c);
    OK(&c, "--memory", "hugepages=on");
    assert_int_equal(c.mem_size, 512 * MIB);   /* the default stays */
    assert_true(c.mem_hugepages);
    config_clear(&c);
    OK(&c, "--memory", "4G,shared=off,hugepages=off");
    assert_int_equal(c.mem_size, 4 * GIB);
    assert_false(c.mem_hugepages);
    config_clear(&c);

    ERR("--memory", "--memory", "12Q");
    ERR("--memory", "--memory", "size=1.5G");
    ERR("--memory", "--memory", "99999999999999999999T");
    ERR("--memory", "--memory", "1G,hugepages=maybe");
    ERR("--memory", "--memory", "1G,shared");
    ERR("--memory", "--memory", "1G,colour=blue");
    ERR("--memory", "--memory", "1G,=on");
}

static void test_serial(void **state)
{
    static const struct { const char *arg; enum serial_mode mode; } ok[] = {
        { "stdio", SERIAL_STDIO }, { "pty", SERIAL_PTY }, { "off", SERIAL_OFF }, { "none", SERIAL_OFF },
    };
    struct vm_config c;
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        OK(&c, "--serial", "file=/tmp/x", "--serial", ok[i].arg);
        assert_int_equal(c.serial_mode, ok[i].mode);
        assert_null(c.serial_path);     /* a later --serial replaces the file */
        config_clear(&c);
    }
    OK(&c, "--serial", "file=/tmp/a,b");
    assert_int_equal(c.serial_mode, SERIAL_FILE);
    assert_string_equal(c.serial_path, "/tmp/a,b");
    config_clear(&c);
    OK(&c, NULL);
    assert_int_equal(c.serial_mode, SERIAL_STDIO);
    config_clear(&c);

    ERR("--serial", "--serial", "file=");
    ERR("--serial", "--serial", "tcp:localhost:4444");
    ERR("--serial", "--serial", "");
    OK(&c, "--serial", "socket=/tmp/s.sock");
    assert_int_equal(c.serial_mode, SERIAL_SOCKET);
    assert_string_equal(c.serial_path, "/tmp/s.sock");
    config_clear(&c);
}

static void test_console(void **state)
{
    struct vm_config c;
    OK(&c, NULL);
    assert_int_equal(c.console_mode, SERIAL_OFF);   /* default: no virtio-console */
    config_clear(&c);
    OK(&c, "--console", "socket=/tmp/c.sock");
    assert_int_equal(c.console_mode, SERIAL_SOCKET);
    assert_string_equal(c.console_path, "/tmp/c.sock");
    config_clear(&c);
    OK(&c, "--console", "file=/tmp/c.log", "--console", "pty");
    assert_int_equal(c.console_mode, SERIAL_PTY);
    assert_null(c.console_path);
    config_clear(&c);
    OK(&c, "--console", "stdio", "--serial", "file=/tmp/s.log");
    assert_int_equal(c.console_mode, SERIAL_STDIO);
    config_clear(&c);
    OK(&c, "--console", "file=/tmp/c.log", "--serial", "file=/tmp/s.log");
    config_clear(&c);

    ERR("--console", "--console", "bogus");
    ERR("--console", "--console", "socket=");
}

static void test_simple_options(void **state)
{
    struct vm_config c;
    OK(&c, NULL);
    assert_int_equal(c.reboot, REBOOT_RESTART);
    assert_int_equal(c.cpu_model, CPU_MODEL_HOST);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_string_equal(c.cmdline, "console=ttyS0");
    assert_false(c.test_exit);
    config_clear(&c);

    OK(&c, "--reboot", "exit", "--cpu-model", "baseline", "--log-level", "debug", "--test-exit", "--kernel",
       "/k", "--initrd", "/i", "--cmdline", "quiet", "--name", "vm1");
    assert_int_equal(c.reboot, REBOOT_EXIT);
    assert_int_equal(c.cpu_model, CPU_MODEL_BASELINE);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_true(c.test_exit);
    assert_string_equal(c.kernel, "/k");
    assert_string_equal(c.initrd, "/i");
    assert_string_equal(c.cmdline, "quiet");
    assert_string_equal(c.name, "vm1");
    config_clear(&c);
    OK(&c, "--reboot", "restart", "--cpu-model", "host", "--log-level", "error");
    assert_int_equal(c.reboot, REBOOT_RESTART);
    assert_int_equal(c.cpu_model, CPU_MODEL_HOST);
    assert_int_equal(c.log_level, LOG_ERROR);
    config_clear(&c);

    ERR("--reboot", "--reboot", "shutdown");
    ERR("--cpu-model", "--cpu-model", "EPYC");
    ERR("--log-level", "--log-level", "verbose");
}

static void test_bad_command_lines(void **state)
{
    ERR("unknown option '--frobnicate'", "--frobnicate");
    ERR("unknown option '--frobnicate=1'", "--kernel", "/k", "--frobnicate=1");
    ERR("option --kernel needs a value", "--kernel");
    ERR("option --cpus needs a value", "--memory", "1G", "--cpus");
    ERR("unexpected argument 'bzImage'", "bzImage");
    ERR("unexpected argument 'extra'", "--kernel", "/k", "extra");
    /* A good parse after a failed one starts from a clean slate. */
    struct vm_config c;
    OK(&c, "--kernel", "/k2", "--cpus", "2");
    assert_string_equal(c.kernel, "/k2");
    config_clear(&c);
}

static void test_help_version(void **state)
{
    struct vm_config c;
    g_autoptr(GError) err = NULL;
    fflush(stdout);
    assert_int_equal(PARSE(&c, &err, "--version"), 1);
    assert_null(err);
    config_clear(&c);
    assert_int_equal(PARSE(&c, &err, "-V"), 1);
    config_clear(&c);
}

struct files {
    char *dir;
    char *kernel;
};

static int files_setup(void **state)
{
    struct files *f = g_new0(struct files, 1);
    f->dir = g_dir_make_tmp("vmm-test-config-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->kernel = g_build_filename(f->dir, "bzImage", NULL);
    assert_true(g_file_set_contents(f->kernel, "MZ", 2, NULL));
    *state = f;
    return 0;
}

static int files_teardown(void **state)
{
    struct files *f = *state;
    g_unlink(f->kernel);
    g_autofree char *locked = g_build_filename(f->dir, "locked", NULL);
    g_unlink(locked);
    g_rmdir(f->dir);
    g_free(f->kernel);
    g_free(f->dir);
    g_free(f);
    return 0;
}

static void valid_config(struct vm_config *c, const struct files *f)
{
    config_init_defaults(c);
    c->kernel = g_strdup(f->kernel);
}

static void expect_invalid(const struct vm_config *c, const char *prefix, const char *also)
{
    g_autoptr(GError) err = NULL;
    assert_int_equal(config_validate(c, &err), -1);
    assert_non_null(err);
    assert_true(err->domain == CONFIG_ERROR);
    if (!g_str_has_prefix(err->message, prefix) || (also && !strstr(err->message, also)))
        fail_msg("validate: \"%s\" does not start with \"%s\"%s%s", err->message, prefix, also ? " or lacks " : "",
                 also ? also : "");
}

/* Only one of the 16550 and virtio-console may own stdio; they may not
 * share a file or a socket path. */
static void test_validate_console(void **state)
{
    struct files *f = *state;
    struct vm_config c;
    g_autoptr(GError) err = NULL;
    valid_config(&c, f);
    c.console_mode = SERIAL_STDIO;
    expect_invalid(&c, "--console stdio", "--serial off");
    c.serial_mode = SERIAL_OFF;
    assert_int_equal(config_validate(&c, &err), 0);
    c.serial_mode = SERIAL_SOCKET;
    c.serial_path = g_strdup("/tmp/x.sock");
    c.console_mode = SERIAL_SOCKET;
    c.console_path = g_strdup("/tmp/x.sock");
    expect_invalid(&c, "--console /tmp/x.sock", "same path");
    c.console_mode = SERIAL_FILE;
    expect_invalid(&c, "--console /tmp/x.sock", "same path");
    g_free(c.serial_path);
    c.serial_path = NULL;
    c.serial_mode = SERIAL_OFF;
    c.disks = g_new0(struct disk_config, 1);
    c.nr_disks = 1;
    c.disks[0] = (struct disk_config){ .id = g_strdup("d"), .path = g_strdup(f->kernel), .readonly = true,
                                       .iothread = g_strdup("io9") };
    expect_invalid(&c, "--disk", "--object iothread,id=io9");
    c.iothreads = g_new0(char *, 1);
    c.iothreads[0] = g_strdup("io9");
    c.nr_iothreads = 1;
    assert_int_equal(config_validate(&c, &err), 0);
    g_free(c.console_path);
    c.console_path = g_strdup("/tmp/y.sock");
    assert_int_equal(config_validate(&c, &err), 0);
    config_clear(&c);
}

static void test_validate_files(void **state)
{
    struct files *f = *state;
    struct vm_config c;
    g_autoptr(GError) err = NULL;

    valid_config(&c, f);
    assert_int_equal(config_validate(&c, &err), 0);
    config_clear(&c);

    config_init_defaults(&c);
    expect_invalid(&c, "no guest kernel", "--kernel");

    c.kernel = g_build_filename(f->dir, "missing", NULL);
    expect_invalid(&c, "--kernel", "missing");
    g_free(c.kernel);
    c.kernel = g_strdup(f->dir);
    expect_invalid(&c, "--kernel", "directory");
    g_free(c.kernel);

    c.kernel = g_strdup(f->kernel);
    c.initrd = g_build_filename(f->dir, "no-initrd", NULL);
    expect_invalid(&c, "--initrd", "no-initrd");
    g_free(c.initrd);
    c.initrd = g_strdup(f->dir);
    expect_invalid(&c, "--initrd", "directory");
    config_clear(&c);

    /* A path that cannot be opened for another reason than absence. */
    valid_config(&c, f);
    g_free(c.kernel);
    c.kernel = g_build_filename(f->kernel, "x", NULL);
    expect_invalid(&c, "--kernel", g_strerror(ENOTDIR));
    config_clear(&c);

    /* An unreadable file; root reads everything, so only as another user. */
    if (geteuid() != 0) {
        valid_config(&c, f);
        g_free(c.kernel);
        c.kernel = g_build_filename(f->dir, "locked", NULL);
        assert_true(g_file_set_contents(c.kernel, "MZ", 2, NULL));
        assert_int_equal(g_chmod(c.kernel, 0), 0);
        expect_invalid(&c, "--kernel", "locked");
        config_clear(&c);
    }
}

static void test_validate_limits(void **state)
{
    struct files *f = *state;
    struct vm_config c;
    g_autoptr(GError) err = NULL;

    valid_config(&c, f);
    c.cpus_boot = 0;
    expect_invalid(&c, "--cpus", NULL);
    c.cpus_boot = 4;
    c.cpus_max = 2;
    expect_invalid(&c, "--cpus", "max=2");
    c.cpus_boot = 1;
    c.cpus_max = 256;
    expect_invalid(&c, "--cpus", "256");
    c.cpus_max = 255;
    assert_int_equal(config_validate(&c, &err), 0);
    c.cpus_boot = 255;
    assert_int_equal(config_validate(&c, &err), 0);

    c.mem_size = 4 * MIB - 4096;
    expect_invalid(&c, "--memory", "4M");
    c.mem_size = 4 * MIB;
    assert_int_equal(config_validate(&c, &err), 0);
    c.mem_size = TIB + 4096;
    expect_invalid(&c, "--memory", "1T");
    c.mem_size = TIB;
    assert_int_equal(config_validate(&c, &err), 0);
    c.mem_size = 64 * MIB + 512;
    expect_invalid(&c, "--memory", "4K");
    c.mem_size = 5 * MIB;
    assert_int_equal(config_validate(&c, &err), 0);
    c.mem_hugepages = true;
    expect_invalid(&c, "--memory", "2M");
    c.mem_size = 6 * MIB;
    assert_int_equal(config_validate(&c, &err), 0);
    assert_null(err);
    config_clear(&c);
}

static void test_disks(void **state)
{
    struct vm_config c;
    OK(&c, "--disk", "a.img", "--disk", "path=b,,c.img,readonly=on,aio=native,cache=none,num_queues=4,serial=S1,id=data",
       "--disk", "c.img,aio=threads");
    assert_int_equal(c.nr_disks, 3);
    assert_string_equal(c.disks[0].path, "a.img");
    assert_string_equal(c.disks[0].id, "disk0");
    assert_false(c.disks[0].readonly);
    assert_int_equal(c.disks[0].aio, BLOCK_AIO_IO_URING);
    assert_int_equal(c.disks[0].cache, BLOCK_CACHE_WRITEBACK);
    assert_int_equal(c.disks[0].num_queues, 1);
    assert_null(c.disks[0].serial);
    assert_string_equal(c.disks[1].path, "b,c.img");
    assert_string_equal(c.disks[1].id, "data");
    assert_true(c.disks[1].readonly);
    assert_int_equal(c.disks[1].aio, BLOCK_AIO_NATIVE);
    assert_int_equal(c.disks[1].cache, BLOCK_CACHE_NONE);
    assert_int_equal(c.disks[1].num_queues, 4);
    assert_string_equal(c.disks[1].serial, "S1");
    assert_string_equal(c.disks[2].id, "disk2");
    assert_int_equal(c.disks[2].aio, BLOCK_AIO_THREADS);
    config_clear(&c);

    ERR("--disk", "--disk", "");
    ERR("--disk: no path", "--disk", "readonly=on");
    ERR("--disk aio", "--disk", "a,aio=uring");
    ERR("--disk cache", "--disk", "a,cache=directsync");
    ERR("--disk num_queues", "--disk", "a,num_queues=0");
    ERR("--disk num_queues", "--disk", "a,num_queues=65");
    ERR("--disk num_queues", "--disk", "a,num_queues=-1");
    ERR("--disk serial", "--disk", "a,serial=123456789012345678901");
    ERR("--disk readonly", "--disk", "a,readonly=yesplease");
    ERR("--disk: unknown key", "--disk", "a,if=virtio");
    ERR("--disk: 'id' needs", "--disk", "a,id");
    ERR("--disk: id 'x'", "--disk", "a,id=x", "--disk", "b,id=x");
    ERR("--disk: id 'disk1'", "--disk", "a,id=disk1", "--disk", "b");
    const char *many[2 * VMM_MAX_DISKS + 3];
    for (unsigned i = 0; i <= VMM_MAX_DISKS; i++) {
        many[2 * i] = "--disk";
        many[2 * i + 1] = "x.img";
    }
    many[2 * VMM_MAX_DISKS + 2] = NULL;
    expect_err("--disk: at most", many);
}

/* --net user: QEMU's defaults, net= moving them, every key, and the refusals. */
static void test_net_user(void **state)
{
    struct vm_config c;
    OK(&c, "--net", "user", "--net",
       "user,id=u1,mac=52:54:00:00:00:07,net=192.168.100.0/22,host=192.168.100.1,dns=192.168.101.53,"
       "dhcpstart=192.168.102.10,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::6000-192.168.100.9:7000,restrict=on,"
       "ipv6=off,hostname=guest,domainname=example.org");
    assert_int_equal(c.nr_nets, 2);
    const struct net_user_opts *u = c.nets[0].user;
    assert_non_null(u);
    assert_string_equal(c.nets[0].id, "net0");
    assert_null(c.nets[0].tap);
    assert_int_equal(c.nets[0].fd, -1);
    assert_true(config_net_is_user(&c.nets[0]));
    assert_int_equal(ntohl(u->net.s_addr), 0x0a000200);
    assert_int_equal(ntohl(u->mask.s_addr), 0xffffff00);
    assert_int_equal(ntohl(u->host.s_addr), 0x0a000202);
    assert_int_equal(ntohl(u->dns.s_addr), 0x0a000203);
    assert_int_equal(ntohl(u->dhcp.s_addr), 0x0a00020f);
    assert_true(u->ipv4 && u->ipv6);
    assert_false(u->restricted);
    assert_int_equal(u->nr_fwd, 0);
    u = c.nets[1].user;
    assert_string_equal(c.nets[1].id, "u1");
    assert_true(c.nets[1].mac_set);
    assert_int_equal(ntohl(u->net.s_addr), 0xc0a86400);
    assert_int_equal(ntohl(u->mask.s_addr), 0xfffffc00);
    assert_int_equal(ntohl(u->host.s_addr), 0xc0a86401);
    assert_int_equal(ntohl(u->dns.s_addr), 0xc0a86535);
    assert_int_equal(ntohl(u->dhcp.s_addr), 0xc0a8660a);
    assert_true(u->restricted);
    assert_false(u->ipv6);
    assert_string_equal(u->hostname, "guest");
    assert_string_equal(u->domainname, "example.org");
    assert_int_equal(u->nr_fwd, 2);
    assert_false(u->fwd[0].udp);
    assert_int_equal(ntohl(u->fwd[0].haddr.s_addr), 0x7f000001);
    assert_int_equal(u->fwd[0].hport, 2222);
    assert_int_equal(u->fwd[0].gport, 22);
    assert_true(u->fwd[1].udp);
    assert_int_equal(ntohl(u->fwd[1].gaddr.s_addr), 0xc0a86409);
    config_clear(&c);

    /* net= alone moves the defaults with it; a dotted mask works too */
    OK(&c, "--net", "user,net=172.16.0.0/255.255.0.0");
    u = c.nets[0].user;
    assert_int_equal(ntohl(u->host.s_addr), 0xac100002);
    assert_int_equal(ntohl(u->dns.s_addr), 0xac100003);
    assert_int_equal(ntohl(u->dhcp.s_addr), 0xac10000f);
    config_clear(&c);

    ERR("--net user: smb= is not supported", "--net", "user,smb=/srv");
    ERR("--net user: guestfwd= is not supported", "--net", "user,guestfwd=tcp:10.0.2.100:1-cmd:cat");
    ERR("--net user: unknown key 'tap'", "--net", "user,tap=t0");
    ERR("--net user: unknown key 'num_queues'", "--net", "user,num_queues=2");
    ERR("--net user net=10.0.2.0/31: the network must be /1 to /30", "--net", "user,net=10.0.2.0/31");
    ERR("--net user net=10.0.2.0/255.0.255.0: 255.0.255.0 is not a contiguous", "--net", "user,net=10.0.2.0/255.0.255.0");
    ERR("--net user net=10.0.2.5/24: the address has host bits set", "--net", "user,net=10.0.2.5/24");
    ERR("--net user net=ten: not ADDR", "--net", "user,net=ten");
    ERR("--net user host=1.2.3: not an IPv4 address", "--net", "user,host=1.2.3");
    ERR("--net user: dns=10.0.2.255 is not a host address", "--net", "user,dns=10.0.2.255");
    ERR("--net user: dhcpstart=10.9.2.15 is not a host address", "--net", "user,dhcpstart=10.9.2.15");
    ERR("--net user: host=, dns= and dhcpstart= must be three different", "--net", "user,dhcpstart=10.0.2.3");
    ERR("--net user hostfwd=tcp::22: not", "--net", "user,hostfwd=tcp::22");
    ERR("--net user hostfwd=tcp::22-:0: guest port", "--net", "user,hostfwd=tcp::22-:0");
    ERR("--net user hostfwd=tcp::65536-:22: host port", "--net", "user,hostfwd=tcp::65536-:22");
    ERR("--net user hostfwd=icmp::1-:1: protocol", "--net", "user,hostfwd=icmp::1-:1");
    ERR("--net user hostfwd=tcp:localhost:1-:1: host address", "--net", "user,hostfwd=tcp:localhost:1-:1");
    ERR("--net user: hostfwd guest address 10.0.3.9 is outside", "--net", "user,hostfwd=tcp::1-10.0.3.9:1");
    ERR("--net user restrict=maybe: not on or off", "--net", "user,restrict=maybe");
    ERR("--net user: ipv4=off and ipv6=off", "--net", "user,ipv4=off,ipv6=off");
    ERR("--net user hostname=: 1 to 255", "--net", "user,hostname=");
    ERR("--net: id 'n' is used by two", "--net", "user,id=n", "--net", "user,id=n");
}

static void test_nets(void **state)
{
    struct vm_config c;
    OK(&c, "--net", "tap=tap0", "--net", "tap=tap1,mac=52:54:00:aB:cd:EF,num_queues=4,id=lan", "--net", "fd=3");
    assert_int_equal(c.nr_nets, 3);
    assert_string_equal(c.nets[0].tap, "tap0");
    assert_string_equal(c.nets[0].id, "net0");
    assert_int_equal(c.nets[0].fd, -1);
    assert_false(c.nets[0].mac_set);
    assert_int_equal(c.nets[0].num_queues, 1);
    assert_null(c.nets[0].backend);         /* opened by main, not by parsing */
    assert_string_equal(c.nets[1].id, "lan");
    assert_true(c.nets[1].mac_set);
    assert_memory_equal(c.nets[1].mac, ((uint8_t[]){ 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef }), 6);
    assert_int_equal(c.nets[1].num_queues, 4);
    assert_null(c.nets[2].tap);
    assert_int_equal(c.nets[2].fd, 3);
    assert_string_equal(c.nets[2].id, "net2");
    config_clear(&c);

    ERR("--net: empty", "--net", "");
    ERR("--net: no backend", "--net", "id=x");
    ERR("--net: give tap= or fd=", "--net", "tap=a,fd=4");
    ERR("--net tap:", "--net", "tap=");
    ERR("--net tap:", "--net", "tap=0123456789abcdef");
    ERR("--net fd:", "--net", "fd=-1");
    ERR("--net fd:", "--net", "fd=4x");
    ERR("--net mac:", "--net", "tap=a,mac=52:54:00:12:34");
    ERR("--net mac:", "--net", "tap=a,mac=52-54-00-12-34-56");
    ERR("--net mac:", "--net", "tap=a,mac=52:54:00:12:34:5g");
    ERR("--net mac: 03:00:00:00:00:01 is a multicast", "--net", "tap=a,mac=03:00:00:00:00:01");
    ERR("--net num_queues", "--net", "tap=a,num_queues=0");
    ERR("--net num_queues", "--net", "tap=a,num_queues=17");
    ERR("--net fd=4: num_queues=2 needs tap=", "--net", "fd=4,num_queues=2");
    ERR("--net: unknown key 'model'", "--net", "tap=a,model=e1000");
    ERR("--net: id 'x' is used by two", "--net", "tap=a,id=x", "--net", "tap=b,id=x");
    ERR("--net tap=a: the tap is given twice", "--net", "tap=a", "--net", "tap=a");
    ERR("--net fd=4: the fd is given twice", "--net", "fd=4", "--net", "fd=4");
    const char *many[2 * VMM_MAX_NICS + 3];
    char names[VMM_MAX_NICS + 1][16];
    for (unsigned i = 0; i <= VMM_MAX_NICS; i++) {
        snprintf(names[i], sizeof(names[i]), "tap=t%u", i);
        many[2 * i] = "--net";
        many[2 * i + 1] = names[i];
    }
    many[2 * VMM_MAX_NICS + 2] = NULL;
    expect_err("--net: at most", many);
}

static void test_iothreads(void **state)
{
    struct vm_config c;
    OK(&c, "--disk", "a.img,iothread=io1", "--object", "iothread,id=io0", "--object", "iothread,id=io1");
    assert_int_equal(c.nr_iothreads, 2);
    assert_string_equal(c.iothreads[0], "io0");
    assert_string_equal(c.iothreads[1], "io1");
    assert_string_equal(c.disks[0].iothread, "io1");
    config_clear(&c);
    OK(&c, "--disk", "a.img");
    assert_null(c.disks[0].iothread);
    assert_int_equal(c.nr_iothreads, 0);
    config_clear(&c);

    ERR("--object: 'memory-backend-ram' is not", "--object", "memory-backend-ram,id=m0");
    ERR("--object iothread: no id", "--object", "iothread");
    ERR("--object iothread: no id", "--object", "iothread,id=");
    ERR("--object: unknown key 'poll-max-ns'", "--object", "iothread,id=a,poll-max-ns=0");
    ERR("--object iothread: id 'a' is used twice", "--object", "iothread,id=a", "--object", "iothread,id=a");
    ERR("--disk: iothread= is empty", "--disk", "a.img,iothread=");
    const char *many[2 * VMM_MAX_IOTHREADS + 3];
    char ids[VMM_MAX_IOTHREADS + 1][32];
    for (unsigned i = 0; i <= VMM_MAX_IOTHREADS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "iothread,id=t%u", i);
        many[2 * i] = "--object";
        many[2 * i + 1] = ids[i];
    }
    many[2 * VMM_MAX_IOTHREADS + 2] = NULL;
    expect_err("--object iothread: at most", many);
}

/* Hotplug's changes to the config: copies in, removal by id keeping the
 * order, a NIC's tap handed back instead of closed, and copies that stay
 * valid while the arrays move. */
static void test_hotplug_add_remove(void **state)
{
    struct vm_config c;
    config_init_defaults(&c);
    char id[16], path[32];
    for (unsigned i = 0; i < 5; i++) {
        g_snprintf(id, sizeof(id), "d%u", i);
        g_snprintf(path, sizeof(path), "/img/%u", i);
        struct disk_config d = { .id = id, .path = path, .readonly = i == 2, .num_queues = i + 1,
                                 .serial = i == 3 ? "ser" : NULL, .node_name = i == 1 ? "node1" : NULL };
        config_add_disk(&c, &d);
        memset(id, 'x', sizeof(id) - 1);        /* the config has its own copies */
        memset(path, 'x', sizeof(path) - 1);
    }
    assert_int_equal(c.nr_disks, 5);
    assert_string_equal(c.disks[3].path, "/img/3");
    assert_string_equal(c.disks[3].serial, "ser");
    assert_string_equal(c.disks[1].node_name, "node1");
    assert_null(c.disks[0].node_name);
    assert_true(config_has_device(&c, "d4"));
    assert_false(config_has_device(&c, "d5"));

    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
    struct tap *t = tap_from_socket(fds, 1);
    struct net_config n = { .id = "n0", .fd = -1, .num_queues = 1, .backend = t };
    config_add_net(&c, &n);
    assert_true(config_has_device(&c, "n0"));

    assert_true(config_remove_device(&c, "d2", NULL));
    assert_false(config_remove_device(&c, "d2", NULL));
    assert_int_equal(c.nr_disks, 4);
    const char *order[] = { "d0", "d1", "d3", "d4" };
    for (unsigned i = 0; i < 4; i++)
        assert_string_equal(c.disks[i].id, order[i]);
    assert_int_equal(c.disks[2].num_queues, 4);

    struct tap *back = NULL;
    assert_true(config_remove_device(&c, "n0", &back));
    assert_ptr_equal(back, t);
    assert_int_equal(c.nr_nets, 0);
    assert_false(config_has_device(&c, "n0"));
    tap_close(back);
    close(fds[0]);
    close(fds[1]);
    config_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size_good),
        cmocka_unit_test(test_parse_size_bad),
        cmocka_unit_test(test_cpus),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_serial),
        cmocka_unit_test(test_console),
        cmocka_unit_test(test_simple_options),
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_disks),
        cmocka_unit_test(test_iothreads),
        cmocka_unit_test(test_nets),
        cmocka_unit_test(test_net_user),
        cmocka_unit_test(test_hotplug_add_remove),
        cmocka_unit_test_setup_teardown(test_validate_files, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_validate_console, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_validate_limits, files_setup, files_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
