/* cpuid: reads the hypervisor leaves with guest_cpuid() (the firmware gate
 * runs CPUID at CPL 0, where it always reaches the VMM's table) and checks
 * them against the boot info. It also reports what a raw CPUID at CPL 3
 * returns, for information only: that answer is host-dependent (the VMM's
 * table on hosts with CPUID faulting, the outer hypervisor's elsewhere). */
#include <guest.h>

static void signature(const uint32_t r[4], char sig[13])
{
    guest_memcpy(sig, &r[1], 4);
    guest_memcpy(sig + 4, &r[2], 4);
    guest_memcpy(sig + 8, &r[3], 4);
    sig[12] = 0;
}

int guest_main(void)
{
    uint32_t r[4], raw[4];
    char sig[13], rawsig[13];

    guest_cpuid(0x40000000, 0, r);
    signature(r, sig);
    guest_printf("guest_cpuid: max leaf %x signature %s\n", r[0], sig);
    uint32_t max = r[0];
    guest_cpuid(0x40000001, 0, r);
    guest_printf("guest_cpuid: hypercall port %x exit port %x virq vector %x abi %u\n", r[0], r[1], r[2], r[3]);

    __asm__ volatile("cpuid" : "=a"(raw[0]), "=b"(raw[1]), "=c"(raw[2]), "=d"(raw[3]) : "a"(0x40000000), "c"(0));
    signature(raw, rawsig);
    guest_printf("raw cpuid at cpl 3 (host-dependent): signature %s\n", rawsig);

    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    guest_printf("running at cpl %u\n", cs & 3u);
    return guest_strcmp(sig, "argovisorKVM") == 0 && max == 0x40000001 && r[0] == GUEST_HYPERCALL_PORT &&
                   r[1] == GUEST_EXIT_PORT && r[2] == GUEST_VIRQ_VECTOR && r[3] == 1
               ? 0
               : 1;
}
