/* cpuid: reads the hypervisor leaves and checks them against the boot
 * info the firmware parsed. */
#include <guest.h>

static void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

int guest_main(void)
{
    uint32_t r[4];
    char sig[13];

    cpuid(0x40000000, r);
    guest_memcpy(sig, &r[1], 4);
    guest_memcpy(sig + 4, &r[2], 4);
    guest_memcpy(sig + 8, &r[3], 4);
    sig[12] = 0;
    guest_printf("max leaf %x signature %s\n", r[0], sig);
    cpuid(0x40000001, r);
    guest_printf("hypercall port %x exit port %x virq vector %x abi %u\n", r[0], r[1], r[2], r[3]);
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    guest_printf("running at cpl %u\n", cs & 3u);
    return guest_strcmp(sig, "argovisorKVM") == 0 && r[0] == GUEST_HYPERCALL_PORT ? 0 : 1;
}
