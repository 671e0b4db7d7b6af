# argovisor-guest.mk - build argovisor guest kernels outside the source tree.
#
# Installed by `make sdk` (SDK_PREFIX, default build/sdk) beside lib/ and
# include/. In your own Makefile:
#
#     ARGOVISOR_SDK ?= /path/to/sdk
#     include $(ARGOVISOR_SDK)/argovisor-guest.mk
#     all: myguest.elf
#
# Then `make` turns myguest.c (defining int guest_main(void)) into
# myguest.elf, linked with the firmware exactly as the in-tree guests are.
# Several C files: `myguest.elf: myguest.o helper.o`.

ARGOVISOR_SDK ?= $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

GUEST_CC ?= gcc

GUEST_CFLAGS ?= -std=gnu11 -O2 -g -ffreestanding -fno-builtin-printf -nostdlib \
	-fno-pic -fno-pie -no-pie -mno-red-zone -mgeneral-regs-only \
	-mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables \
	-Wall -Wextra -I$(ARGOVISOR_SDK)/include

GUEST_LDFLAGS ?= -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -T $(ARGOVISOR_SDK)/lib/guest.ld

ARGOVISOR_FW_OBJS := $(wildcard $(ARGOVISOR_SDK)/lib/firmware/*.o)
# Optional modules (the stream SDK): linked only if the guest calls them.
ARGOVISOR_FW_LIB := $(ARGOVISOR_SDK)/lib/libargovisor-opt.a

%.o: %.c
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

%.elf: %.o $(ARGOVISOR_FW_OBJS) $(ARGOVISOR_SDK)/lib/guest.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(ARGOVISOR_FW_OBJS) $(filter %.o,$(filter-out $(ARGOVISOR_FW_OBJS),$^)) $(ARGOVISOR_FW_LIB)
