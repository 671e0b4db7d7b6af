/* triplefault: wipes the firmware's IDT and faults. With every gate
 * not present, the #UD cannot be delivered (#NP), neither can the #NP
 * (#DF), nor the #DF: the CPU shuts down (KVM_EXIT_SHUTDOWN).
 *
 * Guest code runs at CPL 3, where LIDT is privileged, but the IDT lives in
 * ordinary (user-writable) firmware memory, so the program clears it in
 * place instead of loading an empty one. */
#include <guest.h>

/* Firmware-internal (firmware/trap.c): 256 gates of 16 bytes. */
extern unsigned char fw_idt[256 * 16];

int guest_main(void)
{
    guest_puts("clearing the IDT");
    guest_memset(fw_idt, 0, sizeof(fw_idt));
    __asm__ volatile("ud2" : : : "memory");
    return 1;
}
