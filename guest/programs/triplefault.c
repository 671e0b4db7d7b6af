/* triplefault: loads an empty IDT and faults, so the CPU cannot deliver
 * the exception and shuts down (KVM_EXIT_SHUTDOWN). */
#include <guest.h>

int guest_main(void)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idt = { 0, 0 };

    guest_puts("loading an empty IDT");
    __asm__ volatile("lidt %0\n\tud2" : : "m"(idt));
    return 1;
}
