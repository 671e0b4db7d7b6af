# firmware/build.mk - builds the guest firmware and every guest program.
#
# Included by the top-level Makefile; also usable on its own from the
# repository root:
#
#     make -f firmware/build.mk guests
#
# Every guest/programs/NAME.c becomes build/guests/NAME.elf, linked with all
# firmware objects (build/firmware/*.o). Adding a program = adding one file.
# All paths are relative to the repository root.

GUEST_CC ?= gcc

GUEST_CFLAGS ?= -std=gnu11 -O2 -g -ffreestanding -fno-builtin-printf -nostdlib \
	-fno-pic -fno-pie -no-pie -mno-red-zone -mgeneral-regs-only \
	-mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables \
	-Wall -Wextra -Werror -Iguest/include

GUEST_LDFLAGS ?= -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -T firmware/guest.ld

GUEST_FW_DIR   := build/firmware
GUEST_ELF_DIR  := build/guests

GUEST_FW_C     := $(wildcard firmware/*.c)
GUEST_FW_S     := $(wildcard firmware/*.S)
GUEST_FW_OBJS  := $(patsubst firmware/%.c,$(GUEST_FW_DIR)/%.o,$(GUEST_FW_C)) \
                  $(patsubst firmware/%.S,$(GUEST_FW_DIR)/%.S.o,$(GUEST_FW_S))
GUEST_HEADERS  := $(wildcard guest/include/*.h firmware/*.h guest/programs/*.h)

GUEST_PROG_SRCS := $(wildcard guest/programs/*.c)
GUEST_ELFS      := $(patsubst guest/programs/%.c,$(GUEST_ELF_DIR)/%.elf,$(GUEST_PROG_SRCS))

# Do not let the targets below become the includer's default goal; when
# this file is the only makefile (make -f firmware/build.mk), default to
# `guests`.
GUEST_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)
GUEST_STANDALONE := $(if $(filter 1,$(words $(MAKEFILE_LIST))),yes)

.PHONY: guests guests-clean

guests: $(GUEST_ELFS)

$(GUEST_FW_DIR) $(GUEST_ELF_DIR):
	mkdir -p $@

$(GUEST_FW_DIR)/%.o: firmware/%.c $(GUEST_HEADERS) | $(GUEST_FW_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_FW_DIR)/%.S.o: firmware/%.S $(GUEST_HEADERS) | $(GUEST_FW_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_ELF_DIR)/%.o: guest/programs/%.c $(GUEST_HEADERS) | $(GUEST_ELF_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_ELF_DIR)/%.elf: $(GUEST_ELF_DIR)/%.o $(GUEST_FW_OBJS) firmware/guest.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_FW_OBJS) $<

# Keep the objects: otherwise make treats them as intermediate files of the
# pattern rules, deletes them and relinks everything on the next run.
.SECONDARY: $(GUEST_FW_OBJS) \
	$(patsubst guest/programs/%.c,$(GUEST_ELF_DIR)/%.o,$(GUEST_PROG_SRCS))

guests-clean:
	rm -rf $(GUEST_FW_DIR) $(GUEST_ELF_DIR)

.DEFAULT_GOAL := $(if $(GUEST_STANDALONE),guests,$(GUEST_SAVED_DEFAULT_GOAL))
