/* Entry points: PVH (default) or the bzImage payload (-DBZ_PAYLOAD). Both end
 * in long64 with our own GDT and page tables (0..4 GiB identity, 2 MiB pages)
 * and call rt_start(proto, info). Also the AP path for the smp guest. */

#define PROTO_PVH       1
#define PROTO_LINUX64   2
#define PROTO_LINUX32   3

#define SEL_CODE64      0x08
#define SEL_DATA        0x10
#define SEL_CODE32      0x18

#define STACK_SIZE      16384
#define AP_STACK_SIZE   4096
#define AP_MAX          64

#define MSR_EFER        0xc0000080
#define EFER_LME        0x100
#define CR0_PE          0x1
#define CR0_PG          0x80000000
#define CR4_PAE         0x20

    .section .head, "ax"
#ifdef BZ_PAYLOAD
    .code32
    .globl _start
_start:
/* code32_start (load address + 0): the 32-bit protocol, ESI = boot_params,
 * flat segments. Our real-mode setup comes here under QEMU. */
    cli
    cld
    movl    %esi, boot_ptr
    movl    $PROTO_LINUX32, boot_proto
    jmp     enter_long_mode

    .org    0x200
    .code64
/* load address + 0x200: the 64-bit protocol, RSI = boot_params, paging on
 * with the loader's identity map. */
entry64:
    cli
    cld
    movl    %esi, boot_ptr(%rip)
    movl    $PROTO_LINUX64, boot_proto(%rip)
    leaq    __bss_start(%rip), %rdi
    leaq    __bss_end(%rip), %rcx
    subq    %rdi, %rcx
    shrq    $3, %rcx
    xorl    %eax, %eax
    rep stosq
    leaq    pml4(%rip), %rdi
    leaq    pdpt(%rip), %rax
    orq     $3, %rax
    movq    %rax, (%rdi)
    leaq    pdpt(%rip), %rdi
    leaq    pd(%rip), %rax
    orq     $3, %rax
    movl    $4, %ecx
1:  movq    %rax, (%rdi)
    addq    $8, %rdi
    addq    $4096, %rax
    loop    1b
    leaq    pd(%rip), %rdi
    movl    $0x83, %eax             /* present, writable, 2 MiB */
    movl    $2048, %ecx
2:  movq    %rax, (%rdi)
    addq    $8, %rdi
    addq    $0x200000, %rax
    loop    2b
    lgdt    gdt_desc(%rip)
    leaq    pml4(%rip), %rax
    movq    %rax, %cr3
    pushq   $SEL_CODE64
    leaq    long64(%rip), %rax
    pushq   %rax
    lretq
#else
    .code32
    .globl _start
_start:
/* PVH: 32-bit protected mode, paging off, EBX = hvm_start_info. */
    cli
    cld
    movl    %ebx, boot_ptr
    movl    $PROTO_PVH, boot_proto
    jmp     enter_long_mode

    .section .note.Xen, "a"
    .p2align 2
    .long   4                       /* namesz */
    .long   4                       /* descsz */
    .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz  "Xen"
    .long   _start
    .section .head, "ax"
#endif

    .code32
enter_long_mode:
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    shrl    $2, %ecx
    xorl    %eax, %eax
    rep stosl
    movl    $pdpt + 3, pml4
    movl    $pdpt, %edi
    movl    $pd + 3, %eax
    movl    $4, %ecx
1:  movl    %eax, (%edi)
    addl    $8, %edi
    addl    $4096, %eax
    loop    1b
    movl    $pd, %edi
    movl    $0x83, %eax
    xorl    %edx, %edx
    movl    $2048, %ecx
2:  movl    %eax, (%edi)
    movl    %edx, 4(%edi)
    addl    $8, %edi
    addl    $0x200000, %eax
    adcl    $0, %edx
    loop    2b
    lgdt    gdt_desc
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    ljmp    $SEL_CODE32, $paging32
paging32:
    movl    %cr4, %eax
    orl     $CR4_PAE, %eax
    movl    %eax, %cr4
    movl    $pml4, %eax
    movl    %eax, %cr3
    movl    $MSR_EFER, %ecx
    rdmsr
    orl     $EFER_LME, %eax
    wrmsr
    movl    %cr0, %eax
    orl     $(CR0_PG | CR0_PE), %eax
    movl    %eax, %cr0
    ljmp    $SEL_CODE64, $long64

    .code64
long64:
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs
    leaq    bsp_stack_top(%rip), %rsp
    movl    boot_proto(%rip), %edi
    movl    boot_ptr(%rip), %esi
    call    rt_start
3:  cli
    hlt
    jmp     3b

/* ---- application processors ---- */

/* Copied to a page below 1 MiB; entered in real mode with CS = page >> 4, IP = 0. */
    .section .rodata
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    lgdtl   %cs:(ap_tramp_gdt - ap_trampoline_start)
    movl    %cr0, %eax
    orl     $CR0_PE, %eax
    movl    %eax, %cr0
    ljmpl   $SEL_CODE32, $ap_entry32
    .p2align 3
ap_tramp_gdt:
    .word   gdt_end - gdt - 1
    .long   gdt
ap_trampoline_end:

    .text
    .code32
ap_entry32:
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %cr4, %eax
    orl     $CR4_PAE, %eax
    movl    %eax, %cr4
    movl    $pml4, %eax
    movl    %eax, %cr3
    movl    $MSR_EFER, %ecx
    rdmsr
    orl     $EFER_LME, %eax
    wrmsr
    movl    %cr0, %eax
    orl     $(CR0_PG | CR0_PE), %eax
    movl    %eax, %cr0
    ljmp    $SEL_CODE64, $ap_long64

    .code64
ap_long64:
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs
    movl    $1, %eax
    lock xaddl %eax, ap_stack_next(%rip)
    cmpl    $AP_MAX, %eax
    jae     4f
    incl    %eax
    imull   $AP_STACK_SIZE, %eax
    leaq    ap_stacks(%rip), %rsp
    addq    %rax, %rsp
    call    ap_main
4:  cli
    hlt
    jmp     4b

/* ---- data ---- */

    .data
    .p2align 3
gdt:
    .quad   0
    .quad   0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad   0x00cf92000000ffff      /* 0x10: flat data */
    .quad   0x00cf9a000000ffff      /* 0x18: flat 32-bit code */
gdt_end:
    .p2align 3
    .word   0, 0, 0
gdt_desc:
    .word   gdt_end - gdt - 1
    .quad   gdt
    .globl boot_proto, boot_ptr, ap_stack_next
boot_proto: .long 0
boot_ptr:   .long 0
ap_stack_next: .long 0

    .bss
    .p2align 12
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4 * 4096
    .p2align 4
    .skip STACK_SIZE
bsp_stack_top:
ap_stacks:
    .skip AP_MAX * AP_STACK_SIZE
