#include "rt.h"

#define STUB_SIZE 16
#define SEL_CODE64 0x08

struct idt_gate {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t ist;
    uint8_t type;
    uint16_t off_mid;
    uint32_t off_hi;
    uint32_t zero;
} __attribute__((packed));

extern const uint8_t isr_stubs[];
static struct idt_gate idt[256] __attribute__((aligned(16)));
static irq_handler_fn handlers[256];

void irq_dispatch(struct irq_frame *f);

void irq_dispatch(struct irq_frame *f)
{
    irq_handler_fn fn = handlers[f->vector & 0xff];
    if (fn) {
        fn(f);
        return;
    }
    printf("not ok - unexpected vector %lu error 0x%lx at rip 0x%lx\n", f->vector, f->error, f->rip);
    debug_exit(1);
}

void irq_set_handler(uint8_t vector, irq_handler_fn fn)
{
    handlers[vector] = fn;
}

void idt_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + v * STUB_SIZE);
        idt[v] = (struct idt_gate){
            .off_lo = (uint16_t)a, .sel = SEL_CODE64, .type = 0x8e,     /* present, interrupt gate */
            .off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32),
        };
    }
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) d = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" :: "m"(d));
}
