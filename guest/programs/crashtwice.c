/* crashtwice: crashes (#UD) on its first `crashes` boots (param, default 2)
 * and exits 0 on the next one. The boot count comes from the restart count
 * the VMM writes into the boot info, the only state that survives a
 * restart; the control-API tests run it with on_crash = "restart". */
#include <guest.h>

int guest_main(void)
{
    unsigned boot = guest_restart_count();
    unsigned crashes = (unsigned)guest_param_u64("crashes", 2);

    if (boot < crashes) {
        guest_printf("boot %u: crashing on purpose\n", boot);
        __asm__ volatile("ud2" : : : "memory");
        return 1;
    }
    guest_printf("boot %u: ok after %u restarts\n", boot, boot);
    return 0;
}
