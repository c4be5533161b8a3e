/* qemu_compat: the QEMU-style argv libvirt gives (libvirt-contract.md §3.1,
 * §4.2) into struct vm_config; ",," escaping and the JSON forms; every
 * refusal is one CONFIG_ERROR line starting with the option at fault; the
 * table of options accepted and ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "devices/net_user.h"
#include "vmm/config.h"
#include "vmm/qemu_compat.h"

#define MIB (1ULL << 20)

struct parsed {
    struct vm_config c;
    struct qemu_compat q;
    GError *err;
    int r;
};

/* argv without argv[0], NULL-terminated. */
static void parse_v(struct parsed *p, const char *const *args)
{
    GPtrArray *a = g_ptr_array_new();
    g_ptr_array_add(a, (char *)"vmm");
    for (const char *const *s = args; *s; s++)
        g_ptr_array_add(a, (char *)*s);
    g_ptr_array_add(a, NULL);
    config_init_defaults(&p->c);
    p->err = NULL;
    p->r = qemu_compat_parse(&p->c, &p->q, (int)a->len - 1, (char **)a->pdata, &p->err);
    g_ptr_array_free(a, TRUE);
}

static void parsed_clear(struct parsed *p)
{
    config_clear(&p->c);
    qemu_compat_clear(&p->q);
    g_clear_error(&p->err);
}

#define PARSE_OK(p, ...)                                                                          \
    do {                                                                                          \
        static const char *const args_[] = { __VA_ARGS__, NULL };                                 \
        parse_v(p, args_);                                                                        \
        if ((p)->r != 0)                                                                          \
            fail_msg("parse failed: %s", (p)->err ? (p)->err->message : "?");                     \
    } while (0)

static void test_wanted(void **state)
{
    static const struct { const char *argv[4]; bool want; } cases[] = {
        { { "/usr/libexec/vmm/qemu-compat/qemu-system-x86_64", "--kernel", "k", NULL }, true },
        { { "vmm", "-name", "guest=x", NULL }, true },
        { { "vmm", "-S", "-no-user-config", NULL }, true },
        { { "vmm", "-S", "--kernel", "k" }, false },
        { { "vmm", "--kernel", "k", NULL }, false },
        { { "vmm", "-h", NULL }, false },
        { { "vmm", "-V", NULL }, false },
        { { "vmm", "-S", NULL }, false },
        { { "vmm", NULL }, false },
        { { "vmm", "-machine", "none", NULL }, true },
        { { "vmm", "-m", "256", NULL }, false },   /* one letter: the native short-option space */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        int argc = 0;
        while (argc < 4 && cases[i].argv[argc])
            argc++;
        if (qemu_compat_wanted(argc, (char **)cases[i].argv) != cases[i].want)
            fail_msg("case %zu (%s %s): want %d", i, cases[i].argv[0], argc > 1 ? cases[i].argv[1] : "",
                     cases[i].want);
    }
}

/* The contract's §4.2 command line, verbatim but for the paths. */
static void test_libvirt_launch(void **state)
{
    struct parsed p;
    PARSE_OK(&p, "-name", "guest=fakerec,debug-threads=on", "-S",
             "-object", "secret,id=masterKey0,format=raw,file=/var/lib/libvirt/qemu/domain-1-fakerec/master-key.aes",
             "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off", "-accel", "kvm", "-cpu", "host,migratable=on",
             "-m", "256", "-overcommit", "mem-lock=off", "-smp", "2,sockets=2,cores=1,threads=1",
             "-uuid", "978C6AF3-B5F0-4591-A637-630869349030", "-display", "none", "-no-user-config", "-nodefaults",
             "-chardev", "socket,id=charmonitor,fd=24,server=on,wait=off",
             "-mon", "chardev=charmonitor,id=monitor,mode=control", "-rtc", "base=utc", "-no-shutdown",
             "-boot", "strict=on", "-kernel", "/srv/vm/vmlinuz", "-initrd", "/srv/vm/initrd.img",
             "-append", "console=ttyS0 root=/dev/vda rw",
             "-blockdev", "{\"driver\":\"file\",\"filename\":\"/srv/vm/disk.raw\",\"aio\":\"native\",\"node-name\":"
                          "\"libvirt-1-storage\",\"cache\":{\"direct\":true,\"no-flush\":false},\"auto-read-only\":true,"
                          "\"discard\":\"unmap\"}",
             "-blockdev", "{\"node-name\":\"libvirt-1-format\",\"read-only\":false,\"cache\":{\"direct\":true,"
                          "\"no-flush\":false},\"driver\":\"raw\",\"file\":\"libvirt-1-storage\"}",
             "-device", "virtio-blk-pci,bus=pci.0,addr=0x3,drive=libvirt-1-format,id=virtio-disk0,bootindex=1,"
                        "write-cache=on",
             "-netdev", "tap,fd=30,id=hostnet0",
             "-device", "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pci.0,addr=0x2",
             "-chardev", "pty,id=charserial0", "-device", "isa-serial,chardev=charserial0,id=serial0,index=0",
             "-audiodev", "{\"id\":\"audio1\",\"driver\":\"none\"}", "-msg", "timestamp=on");
    struct vm_config *c = &p.c;
    assert_string_equal(c->name, "fakerec");
    assert_true(c->paused);
    assert_int_equal(c->mem_size, 256 * MIB);
    assert_int_equal(c->cpus_boot, 2);
    assert_int_equal(c->cpus_max, 2);
    assert_int_equal(c->cpu_model, CPU_MODEL_HOST);
    assert_true(p.q.cpu_migratable);
    assert_string_equal(c->uuid, "978c6af3-b5f0-4591-a637-630869349030");
    assert_int_equal(c->nr_qmp, 1);
    assert_null(c->qmp[0].path);
    assert_int_equal(c->qmp[0].fd, 24);
    assert_false(c->qmp[0].wait);
    assert_string_equal(p.q.monitor_label, "charmonitor");
    assert_string_equal(c->kernel, "/srv/vm/vmlinuz");
    assert_string_equal(c->initrd, "/srv/vm/initrd.img");
    assert_string_equal(c->cmdline, "console=ttyS0 root=/dev/vda rw");
    assert_true(c->no_shutdown);
    assert_int_equal(c->reboot, REBOOT_RESTART);
    assert_int_equal(c->nr_disks, 1);
    assert_string_equal(c->disks[0].path, "/srv/vm/disk.raw");
    assert_string_equal(c->disks[0].id, "virtio-disk0");
    assert_false(c->disks[0].readonly);
    assert_int_equal(c->disks[0].aio, BLOCK_AIO_NATIVE);
    assert_int_equal(c->disks[0].cache, BLOCK_CACHE_NONE);
    assert_int_equal(c->disks[0].pci_slot, 3);
    assert_int_equal(c->disks[0].num_queues, 1);
    assert_int_equal(c->nr_nets, 1);
    assert_int_equal(c->nets[0].fd, 30);
    assert_null(c->nets[0].tap);
    assert_string_equal(c->nets[0].id, "net0");
    assert_true(c->nets[0].mac_set);
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    assert_memory_equal(c->nets[0].mac, mac, 6);
    assert_int_equal(c->nets[0].pci_slot, 2);
    assert_int_equal(c->serial_mode, SERIAL_PTY);
    assert_string_equal(p.q.serial_label, "charserial0");
    assert_string_equal(p.q.serial_dev_id, "serial0");
    assert_int_equal(c->console_mode, SERIAL_OFF);
    assert_false(p.q.probe);
    assert_false(p.q.daemonize);
    parsed_clear(&p);
}

/* §3.1: the capability probe. */
static void test_probe(void **state)
{
    struct parsed p;
    PARSE_OK(&p, "-S", "-no-user-config", "-nodefaults", "-nographic", "-machine", "none,accel=kvm:tcg",
             "-qmp", "unix:/var/lib/libvirt/qemu/qmp-ZNRAZ3/qmp.monitor,server=on,wait=off",
             "-pidfile", "/var/lib/libvirt/qemu/qmp-ZNRAZ3/qmp.pid", "-daemonize");
    assert_true(p.q.probe);
    assert_true(p.q.daemonize);
    assert_string_equal(p.q.pidfile, "/var/lib/libvirt/qemu/qmp-ZNRAZ3/qmp.pid");
    assert_int_equal(p.c.nr_qmp, 1);
    assert_string_equal(p.c.qmp[0].path, "/var/lib/libvirt/qemu/qmp-ZNRAZ3/qmp.monitor");
    assert_false(p.c.qmp[0].wait);
    assert_string_equal(p.q.monitor_label, "compat_monitor0");
    assert_int_equal(p.c.serial_mode, SERIAL_OFF);
    assert_null(p.c.kernel);
    parsed_clear(&p);
}

/* ",," is a comma inside a value; the same options in key=value and JSON. */
static void test_escaping_and_json(void **state)
{
    struct parsed p;
    PARSE_OK(&p, "-name", "guest=a,,b", "-machine", "pc", "-kernel", "/k",
             "-blockdev", "driver=file,filename=/img/x,,y.raw,node-name=s0,read-only=on,cache.direct=off,aio=threads",
             "-blockdev", "driver=raw,node-name=f0,file=s0",
             "-device", "{\"driver\":\"virtio-blk-pci\",\"bus\":\"pci.0\",\"addr\":\"0x4\",\"drive\":\"f0\","
                        "\"id\":\"virtio-disk1\",\"bootindex\":1,\"num-queues\":2}",
             "-netdev", "{\"type\":\"tap\",\"fd\":\"31\",\"id\":\"hostnet1\",\"vhost\":false}",
             "-device", "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet1\",\"id\":\"net1\",\"addr\":\"0x5.0\"}",
             "-object", "{\"qom-type\":\"secret\",\"id\":\"masterKey0\",\"format\":\"raw\",\"file\":\"/x\"}",
             "-chardev", "file,id=charserial0,path=/log/a,,b.log", "-device", "isa-serial,chardev=charserial0");
    assert_string_equal(p.c.name, "a,b");
    assert_string_equal(p.c.disks[0].path, "/img/x,y.raw");
    assert_true(p.c.disks[0].readonly);
    assert_int_equal(p.c.disks[0].cache, BLOCK_CACHE_WRITEBACK);
    assert_int_equal(p.c.disks[0].aio, BLOCK_AIO_THREADS);
    assert_int_equal(p.c.disks[0].num_queues, 2);
    assert_int_equal(p.c.disks[0].pci_slot, 4);
    assert_string_equal(p.c.disks[0].id, "virtio-disk1");
    assert_int_equal(p.c.nets[0].fd, 31);
    assert_int_equal(p.c.nets[0].pci_slot, 5);
    assert_false(p.c.nets[0].mac_set);
    assert_int_equal(p.c.serial_mode, SERIAL_FILE);
    assert_string_equal(p.c.serial_path, "/log/a,b.log");
    assert_string_equal(p.q.serial_dev_id, "serial0");
    assert_string_equal(p.c.cmdline, "");
    parsed_clear(&p);
}

static void test_more_options(void **state)
{
    struct parsed p;
    PARSE_OK(&p, "--machine", "pc-i440fx-6.2,memory-backend=pc.ram", "-cpu", "max", "-m", "size=1048576k",
             "-object", "memory-backend-memfd,id=pc.ram,size=1073741824,share=on",
             "-smp", "2,maxcpus=4,sockets=4,dies=1,cores=1,threads=1", "-no-reboot", "-kernel", "/k",
             "-object", "iothread,id=iothread1", "-global", "PIIX4_PM.disable_s3=1", "-global", "PIIX4_PM.disable_s4=1",
             "-rtc", "base=utc,driftfix=slew", "-no-hpet", "-usb", "-sandbox", "on,obsolete=deny",
             "-device", "piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2",
             "-device", "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x6",
             "-device", "virtio-serial-pci,id=virtio-serial0,bus=pci.0,addr=0x7",
             "-chardev", "pty,id=charconsole0",
             "-device", "virtconsole,chardev=charconsole0,id=console0,bus=virtio-serial0.0,nr=0",
             "-netdev", "tap,fds=33,id=hostnet0,vhost=off", "-device", "virtio-net-pci,netdev=hostnet0,id=net0",
             "-enable-kvm", "-accel", "kvm");
    assert_int_equal(p.c.mem_size, 1024 * MIB);
    assert_true(p.c.mem_shared);
    assert_false(p.c.mem_hugepages);
    assert_int_equal(p.c.cpus_boot, 2);
    assert_int_equal(p.c.cpus_max, 4);
    assert_int_equal(p.c.reboot, REBOOT_EXIT);
    assert_false(p.c.no_shutdown);
    assert_false(p.c.paused);
    assert_int_equal(p.c.nr_iothreads, 1);
    assert_string_equal(p.c.iothreads[0], "iothread1");
    assert_int_equal(p.c.console_mode, SERIAL_PTY);
    assert_int_equal(p.c.console_pci_slot, 7);
    assert_string_equal(p.q.console_label, "charconsole0");
    assert_string_equal(p.q.console_dev_id, "console0");
    assert_string_equal(p.q.vserial_dev_id, "virtio-serial0");
    assert_int_equal(p.c.nets[0].fd, 33);
    assert_int_equal(p.c.nets[0].pci_slot, 0);
    assert_int_equal(p.c.nr_disks, 0);
    assert_int_equal(p.c.serial_mode, SERIAL_OFF);
    parsed_clear(&p);

    PARSE_OK(&p, "-machine", "pc", "-kernel", "/k", "-m", "64",
             "-chardev", "socket,id=charserial0,path=/run/s.sock,server=on,wait=off", "-device", "isa-serial,chardev=charserial0,id=serial0",
             "-chardev", "socket,id=mon,path=/run/m,,on.sock,server=on,wait=off", "-mon", "chardev=mon,mode=control");
    assert_int_equal(p.c.serial_mode, SERIAL_SOCKET);
    assert_string_equal(p.c.serial_path, "/run/s.sock");
    assert_string_equal(p.c.qmp[0].path, "/run/m,on.sock");
    assert_int_equal(p.c.mem_size, 64 * MIB);
    parsed_clear(&p);
}

/* -netdev user (slirp): its settings go to the NIC that uses it; QEMU's
 * defaults; repeated hostfwd in both the key=value and the JSON forms. */
static void test_netdev_user(void **state)
{
    struct parsed p;
    PARSE_OK(&p, "-kernel", "/k", "-netdev", "user,id=hostnet0,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.20:53",
             "-device", "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pci.0,addr=0x3",
             "-netdev", "{\"type\":\"user\",\"id\":\"hostnet1\",\"net\":\"192.168.76.0/255.255.255.0\","
             "\"restrict\":true,\"hostfwd\":[{\"str\":\"tcp::8080-:80\"}]}",
             "-device", "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet1\",\"id\":\"net1\"}");
    assert_int_equal(p.c.nr_nets, 2);
    const struct net_user_opts *u = p.c.nets[0].user;
    assert_non_null(u);
    assert_int_equal(p.c.nets[0].fd, -1);
    assert_null(p.c.nets[0].tap);
    assert_true(config_net_is_user(&p.c.nets[0]));
    assert_int_equal(p.c.nets[0].pci_slot, 3);
    assert_int_equal(ntohl(u->net.s_addr), 0x0a000200);
    assert_int_equal(ntohl(u->host.s_addr), 0x0a000202);
    assert_int_equal(ntohl(u->dns.s_addr), 0x0a000203);
    assert_int_equal(ntohl(u->dhcp.s_addr), 0x0a00020f);
    assert_false(u->restricted);
    assert_int_equal(u->nr_fwd, 2);
    assert_false(u->fwd[0].udp);
    assert_int_equal(u->fwd[0].haddr.s_addr, 0);
    assert_int_equal(u->fwd[0].hport, 2222);
    assert_int_equal(u->fwd[0].gaddr.s_addr, 0);
    assert_int_equal(u->fwd[0].gport, 22);
    assert_true(u->fwd[1].udp);
    assert_int_equal(ntohl(u->fwd[1].haddr.s_addr), 0x7f000001);
    assert_int_equal(ntohl(u->fwd[1].gaddr.s_addr), 0x0a000214);
    u = p.c.nets[1].user;
    assert_non_null(u);
    assert_true(u->restricted);
    assert_int_equal(ntohl(u->host.s_addr), 0xc0a84c02);
    assert_int_equal(ntohl(u->dhcp.s_addr), 0xc0a84c0f);
    assert_int_equal(u->nr_fwd, 1);
    assert_int_equal(u->fwd[0].hport, 8080);
    parsed_clear(&p);
}

/* Each refusal: one line starting with the option at fault. */
static void test_refusals(void **state)
{
    static const struct { const char *args[8]; const char *prefix; const char *contains; } cases[] = {
        { { "-no-acpi" }, "-no-acpi:", "ACPI" },
        { { "-netdev", "user,id=hostnet0" }, "-netdev user,id=hostnet0:", "no NIC" },
        { { "-netdev", "user,id=u,smb=/srv" }, "-netdev user,id=u:", "smb=" },
        { { "-netdev", "user,id=u,tftp=/srv" }, "-netdev user,id=u:", "tftp=" },
        { { "-netdev", "user,id=u,model=e1000" }, "-netdev user,id=u:", "'model'" },
        { { "-netdev", "user,id=u,net=10.0.2.0/24,dhcpstart=10.0.3.15" }, "-netdev user,id=u:", "dhcpstart=10.0.3.15" },
        { { "-netdev", "{\"type\":\"user\",\"id\":\"u\",\"hostfwd\":[{\"str\":\"tcp:1.2.3:22-:22\"}]}" },
          "-netdev user,id=u hostfwd=", "host address" },
        { { "-netdev", "user" }, "-netdev user:", "id" },
        { { "-netdev", "socket,id=n,listen=:1" }, "-netdev socket:", "tap" },
        { { "-netdev", "tap,fd=30,id=h,vhost=on" }, "-netdev tap:", "vhost=on" },
        { { "-netdev", "tap,fds=30:31,id=h" }, "-netdev tap,id=h:", "one inherited tap fd" },
        { { "-netdev", "tap,ifname=t0,id=h" }, "-netdev tap:", "ifname" },
        { { "-netdev", "tap,fd=30,id=h" }, "-netdev tap,id=h:", "no NIC" },
        { { "-machine", "q35" }, "-machine q35:", "pc" },
        { { "-machine", "pc,usb=on" }, "-machine pc:", "usb=on" },
        { { "-machine", "pc,accel=tcg" }, "-machine:", "KVM" },
        { { "-accel", "tcg" }, "-accel:", "KVM" },
        { { "-cpu", "qemu64" }, "-cpu qemu64:", "host" },
        { { "-cpu", "host,+x2apic" }, "-cpu host:", "+x2apic" },
        { { "-m", "size=256M,slots=16,maxmem=1G" }, "-m:", "slots" },
        { { "-m", "lots" }, "-m:", "size" },
        { { "-smp", "4,threads=2,cores=2" }, "-smp:", "threads=2" },
        { { "-smp", "4,sockets=3" }, "-smp:", "maxcpus" },
        { { "-overcommit", "mem-lock=on" }, "-overcommit:", "mem-lock=on" },
        { { "-rtc", "base=localtime" }, "-rtc:", "base=localtime" },
        { { "-display", "gtk" }, "-display:", "gtk" },
        { { "-audiodev", "{\"id\":\"a\",\"driver\":\"pa\"}" }, "-audiodev:", "driver=pa" },
        { { "-device", "e1000,netdev=n" }, "-device e1000:", "not supported" },
        { { "-device", "virtio-rng-pci" }, "-device virtio-rng-pci:", "not supported" },
        { { "-device", "virtio-blk-pci,drive=x,id=d" }, "-device virtio-blk-pci,id=d:", "drive 'x'" },
        { { "-chardev", "spicevmc,id=c" }, "-chardev c:", "spicevmc" },
        { { "-chardev", "pty,id=c" }, "-chardev pty,id=c:", "no device uses it" },
        { { "-chardev", "socket,id=c,fd=25,server=on,wait=off", "-device", "isa-serial,chardev=c" },
          "-chardev socket,id=c,fd=25:", "inherited socket" },
        { { "-chardev", "socket,id=m,fd=3,server=on,wait=off", "-mon", "chardev=m,mode=readline" }, "-mon:", "QMP only" },
        { { "-chardev", "pty,id=c", "-device", "isa-serial,chardev=c,index=1" }, "-device isa-serial:", "COM1" },
        { { "-blockdev", "{\"driver\":\"qcow2\",\"node-name\":\"q\",\"file\":\"s\"}" }, "-blockdev q:", "raw" },
        { { "-blockdev", "driver=file,filename=/x,node-name=s,discard=ignore" }, "-blockdev file:", "discard=ignore" },
        { { "-blockdev", "driver=file,filename=/x,node-name=s,cache.no-flush=on" }, "-blockdev file:", "no-flush=on" },
        { { "-blockdev", "{\"driver\":" }, "-blockdev:", "JSON" },
        { { "-blockdev", "driver=raw,node-name=f,file=nope" }, "-blockdev raw,node-name=f:", "nope" },
        { { "-device", "virtio-net-pci,netdev=n,id=x,bus=pcie.0" }, "-device virtio-net-pci", "pci.0" },
        { { "-netdev", "tap,fd=30,id=n", "-device", "virtio-net-pci,netdev=n,id=x,addr=0x0" }, "-device virtio-net-pci:", "1 to 31" },
        { { "-netdev", "tap,fd=30,id=n", "-device", "virtio-net-pci,netdev=n,id=x,addr=0x3.1" }, "-device virtio-net-pci:", "function 0" },
        { { "-netdev", "tap,fd=30,id=n", "-device", "virtio-net-pci,netdev=n,id=x,mac=01:00:00:00:00:01" }, "-device virtio-net-pci,id=x:", "unicast" },
        { { "-global", "e1000.mac=1" }, "-global e1000.mac=1:", "not supported" },
        { { "-object", "rng-random,id=r,filename=/dev/urandom" }, "-object rng-random,id=r:", "not supported" },
        { { "-object", "memory-backend-file,id=m,size=64M,mem-path=/var/x" }, "-object memory-backend-file,id=m:", "mem-path" },
        { { "-object", "memory-backend-ram,id=m,size=64M" }, "-object memory-backend-ram,id=m:", "memory-backend=" },
        { { "-qmp", "tcp:localhost:4444" }, "-qmp tcp:", "unix:" },
        { { "-vnc", ":0" }, "-vnc:", "not supported" },
        { { "-hda", "/x" }, "-hda:", "not supported" },
        { { "-uuid", "nope" }, "-uuid:", "UUID" },
        { { "-device", "virtconsole,chardev=c" }, "-device virtconsole:", "virtio-serial-pci" },
        { { "-device", "virtio-serial-pci,id=vs" }, "-device virtio-serial-pci,id=vs:", "virtconsole" },
        { { "-device", "virtio-blk-pci,drive=x" }, "-device virtio-blk-pci:", "id" },
        { { "-name" }, "-name:", "value" },
        { { "stray" }, "'stray':", "option" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *args[12] = { "-machine", "pc", "-kernel", "/k" };
        size_t n = 4;
        for (size_t k = 0; k < 8 && cases[i].args[k]; k++)
            args[n++] = cases[i].args[k];
        args[n] = NULL;
        struct parsed p;
        parse_v(&p, args);
        if (p.r != -1 || !p.err)
            fail_msg("case %zu (%s): accepted", i, cases[i].args[0]);
        if (!g_str_has_prefix(p.err->message, cases[i].prefix) || !strstr(p.err->message, cases[i].contains) ||
            strchr(p.err->message, '\n'))
            fail_msg("case %zu (%s): message \"%s\"; want prefix \"%s\" containing \"%s\"", i, cases[i].args[0],
                     p.err->message, cases[i].prefix, cases[i].contains);
        assert_true(g_error_matches(p.err, CONFIG_ERROR, 0));
        parsed_clear(&p);
    }
    /* No kernel outside the probe; devices on the none machine. */
    struct parsed p;
    parse_v(&p, (const char *const[]){ "-machine", "pc", "-m", "64", NULL });
    assert_int_equal(p.r, -1);
    assert_true(g_str_has_prefix(p.err->message, "no -kernel"));
    parsed_clear(&p);
    parse_v(&p, (const char *const[]){ "-machine", "none", "-kernel", "/k", NULL });
    assert_int_equal(p.r, -1);
    assert_true(g_str_has_prefix(p.err->message, "-machine none"));
    parsed_clear(&p);
}

/* libvirt's file serial: -add-fd hands over the file it opened, -chardev
 * file names its set as /dev/fdset/N; the serial writes to that fd
 * (/dev/fd/M, char_backend). The set is found whatever the option order;
 * a set without a writable fd, an fd not open, stdio fds, append=on on a
 * file vmm opens itself and a logfile are refused with one line. */
static void test_add_fd(void **state)
{
    (void)state;
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC), wr = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(ro > 2 && wr > 2);
    g_autofree char *ro_s = g_strdup_printf("set=3,fd=%d,opaque=serial0-log", ro);
    g_autofree char *wr_s = g_strdup_printf("set=0,fd=%d,opaque=serial0-source", wr);
    g_autofree char *want = g_strdup_printf("/dev/fd/%d", wr);
    struct parsed p;
    parse_v(&p, (const char *const[]){ "-machine", "pc", "-kernel", "/k", "-add-fd", ro_s, "-add-fd", wr_s,
                                       "-chardev", "file,id=charserial0,path=/dev/fdset/0,append=on",
                                       "-device", "isa-serial,chardev=charserial0,id=serial0,index=0", NULL });
    if (p.r != 0)
        fail_msg("parse failed: %s", p.err ? p.err->message : "?");
    assert_int_equal(p.c.serial_mode, SERIAL_FILE);
    assert_string_equal(p.c.serial_path, want);
    parsed_clear(&p);
    /* -add-fd after the -chardev that names its set */
    parse_v(&p, (const char *const[]){ "-machine", "pc", "-kernel", "/k",
                                       "-chardev", "file,id=c,path=/dev/fdset/0", "-add-fd", wr_s,
                                       "-device", "isa-serial,chardev=c", NULL });
    if (p.r != 0)
        fail_msg("parse failed: %s", p.err ? p.err->message : "?");
    assert_string_equal(p.c.serial_path, want);
    parsed_clear(&p);

    g_autofree char *closed_s = g_strdup_printf("set=1,fd=%d", wr + 100);
    g_autofree char *closed_w = g_strdup_printf("fd=%d is not open", wr + 100);
    const struct {
        const char *args[6];
        const char *prefix, *contains;
    } cases[] = {
        { { "-add-fd", "set=0" }, "-add-fd:", "fd=N" },
        { { "-add-fd", "fd=x,set=0" }, "-add-fd:", "fd=x" },
        { { "-add-fd", "fd=9,set=y" }, "-add-fd:", "set=y" },
        { { "-add-fd", "fd=1,set=0" }, "-add-fd:", "stdout" },
        { { "-add-fd", closed_s }, "-add-fd:", closed_w },
        { { "-add-fd", wr_s, "-add-fd", "fd=9,set=0,dupfd=3" }, "-add-fd:", "dupfd" },
        { { "-add-fd", ro_s, "-chardev", "file,id=c,path=/dev/fdset/3", "-device", "isa-serial,chardev=c" },
          "-chardev file,id=c:", "writable" },
        { { "-chardev", "file,id=c,path=/dev/fdset/7", "-device", "isa-serial,chardev=c" },
          "-chardev file,id=c:", "set=7" },
        { { "-chardev", "file,id=c,path=/var/log/s.log,append=on" }, "-chardev file,id=c:", "append=on" },
        { { "-add-fd", wr_s, "-chardev", "file,id=c,path=/dev/fdset/0,logfile=/dev/fdset/0,logappend=on" },
          "-chardev file", "logfile" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *args[12] = { "-machine", "pc", "-kernel", "/k" };
        size_t n = 4;
        for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
            args[n++] = cases[i].args[k];
        args[n] = NULL;
        parse_v(&p, args);
        if (p.r != -1 || !p.err)
            fail_msg("case %zu (%s): accepted", i, cases[i].args[1]);
        if (!g_str_has_prefix(p.err->message, cases[i].prefix) || !strstr(p.err->message, cases[i].contains) ||
            strchr(p.err->message, '\n'))
            fail_msg("case %zu (%s): message \"%s\"; want prefix \"%s\" containing \"%s\"", i, cases[i].args[1],
                     p.err->message, cases[i].prefix, cases[i].contains);
        parsed_clear(&p);
    }
    close(ro);
    close(wr);
}

static void check_entry(const char *opt, const char *key, const char *value, const char *reason, void *opaque)
{
    unsigned *n = opaque;
    (*n)++;
    assert_true(opt[0] == '-');
    assert_non_null(reason);
    assert_true(strlen(reason) > 10);
    assert_ptr_equal(qemu_compat_ignored(opt, key, value ? value : "any"), reason);
}

/* Every table entry answers for itself; other values and keys do not. */
static void test_ignored_table(void **state)
{
    unsigned n = 0;
    qemu_compat_foreach_ignored(check_entry, &n);
    assert_true(n >= 30);
    assert_null(qemu_compat_ignored("-machine", "usb", "on"));
    assert_null(qemu_compat_ignored("-device", "driver", "e1000"));
    assert_null(qemu_compat_ignored("-no-acpi", NULL, NULL));
    assert_null(qemu_compat_ignored("-rtc", "base", "localtime"));
    assert_non_null(qemu_compat_ignored("-device", "driver", "virtio-balloon-pci"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_netdev_user),
        cmocka_unit_test(test_libvirt_launch),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_escaping_and_json),
        cmocka_unit_test(test_more_options),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_add_fd),
        cmocka_unit_test(test_ignored_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
