/* The bzImage setup (real-mode) part: boot sector, setup header (boot
 * protocol 2.15, 64-bit entry) and a small real-mode program for loaders
 * that run it (QEMU): it collects the E820 map with INT 15h and enters the
 * payload's 32-bit entry at code32_start with ESI = boot_params.
 * Linked at 0; the loader sets DS = ES = SS = the setup segment and jumps to
 * CS = setup segment + 0x20, IP = 0 (file offset 0x200). mkbzimage.py fills in
 * setup_sects, syssize and init_size. */
    .code16
    .section .text
    .globl _start
_start:
    .org    0x1f1
setup_sects:        .byte 1
root_flags:         .word 0
syssize:            .long 0
ram_size:           .word 0
vid_mode:           .word 0xffff
root_dev:           .word 0
boot_flag:          .word 0xaa55
    .byte   0xeb, start_of_setup - header       /* jmp start_of_setup */
header:             .ascii "HdrS"
version:            .word 0x020f
realmode_swtch:     .long 0
start_sys_seg:      .word 0x1000
kernel_version:     .word 0
type_of_loader:     .byte 0
loadflags:          .byte 0x01                  /* LOADED_HIGH */
setup_move_size:    .word 0x8000
code32_start:       .long 0x100000
ramdisk_image:      .long 0
ramdisk_size:       .long 0
bootsect_kludge:    .long 0
heap_end_ptr:       .word 0
ext_loader_ver:     .byte 0
ext_loader_type:    .byte 0
cmd_line_ptr:       .long 0
initrd_addr_max:    .long 0x7fffffff
kernel_alignment:   .long 0x1000
relocatable_kernel: .byte 0
min_alignment:      .byte 12
xloadflags:         .word 0x0001                /* XLF_KERNEL_64 */
cmdline_size:       .long 4095
hardware_subarch:   .long 0
hardware_subarch_data: .quad 0
payload_offset:     .long 0
payload_length:     .long 0
setup_data:         .quad 0
pref_address:       .quad 0x100000
init_size:          .long 0
handover_offset:    .long 0
kernel_info_offset: .long 0
hdr_end:

#define SMAP            0x534d4150
#define E820_ENTRIES    0x1e8
#define E820_TABLE      0x2d0
#define E820_MAX        128
#define BP              0x1000      /* boot_params, from our segment base */

start_of_setup:
    cli
    cld
    movw    %ds, %ax
    movw    %ax, %es
    movw    %ax, %ss
    movw    $0xe000, %sp
    /* boot_params go in a page of their own: the setup code itself sits
     * where boot_params.e820_table would be */
    movw    $BP, %di
    xorl    %eax, %eax
    movw    $1024, %cx
    rep stosl
    movw    $0x1f1, %si
    movw    $BP + 0x1f1, %di
    movw    $hdr_end - 0x1f1, %cx
    rep movsb
    xorl    %ebx, %ebx
    movw    $BP + E820_TABLE, %di
    xorw    %bp, %bp
1:  movl    $0xe820, %eax
    movl    $20, %ecx
    movl    $SMAP, %edx
    int     $0x15
    jc      2f
    cmpl    $SMAP, %eax
    jne     2f
    incw    %bp
    addw    $20, %di
    cmpw    $E820_MAX, %bp
    jae     2f
    testl   %ebx, %ebx
    jnz     1b
2:  movw    %bp, %ax
    movb    %al, BP + E820_ENTRIES
    /* linear addresses: our segment base, boot_params, the GDT, pm32 */
    xorl    %edx, %edx
    movw    %ds, %dx
    shll    $4, %edx
    leal    BP(%edx), %esi
    leal    gdt(%edx), %eax
    movl    %eax, gdt_base
    leal    pm32(%edx), %eax
    movl    %eax, pm32_ptr
    lgdtl   gdt_desc
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   *pm32_ptr

    .code32
pm32:
    movl    $0x18, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    code32_start(%esi), %eax
    jmp     *%eax

    .p2align 3
gdt:
    .quad   0
    .quad   0
    .quad   0x00cf9a000000ffff                  /* 0x10: __BOOT_CS */
    .quad   0x00cf92000000ffff                  /* 0x18: __BOOT_DS */
gdt_end:
gdt_desc:
    .word   gdt_end - gdt - 1
gdt_base:
    .long   0
pm32_ptr:
    .long   0
    .word   0x10
    .p2align 9
