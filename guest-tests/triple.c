/* triple: an exception with an empty IDT becomes a triple fault; vmm with
 * --reboot exit must exit 6 (QEMU with -no-reboot treats it as a reset: 0). */
#include "rt.h"

int main(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = { 0, 0 };
    printf("# triple-faulting: empty IDT, then ud2\n");
    __asm__ volatile("lidt %0; ud2" :: "m"(empty));
    printf("not ok - survived a triple fault\n");
    return 1;
}
