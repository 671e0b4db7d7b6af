# firmware/build.mk - builds the guest firmware and every guest program.
#
# Included by the top-level Makefile; also usable on its own from the
# repository root:
#
#     make -f firmware/build.mk guests
#
# Every guest/examples/NAME.c (the example guests) and guest/fixtures/NAME.c
# (the guests the tests and benchmarks drive) becomes build/guests/NAME.elf,
# linked with all firmware objects (build/firmware/*.o). Adding a program =
# adding one file; a name may be used in only one of the two directories.
# All paths are relative to the repository root.
#
# `make sdk` installs what an out-of-tree guest needs (firmware objects,
# linker script, headers and a makefile fragment) under SDK_PREFIX
# (default build/sdk); see the README, "Writing a guest".

GUEST_CC ?= gcc

GUEST_CFLAGS ?= -std=gnu11 -O2 -g -ffreestanding -fno-builtin-printf -nostdlib \
	-fno-pic -fno-pie -no-pie -mno-red-zone -mgeneral-regs-only \
	-mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables \
	-Wall -Wextra -Werror -Iguest/include

GUEST_LDFLAGS ?= -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -T firmware/guest.ld

GUEST_FW_DIR   := build/firmware
GUEST_ELF_DIR  := build/guests

# Optional firmware modules go into an archive linked after the program,
# so a guest carries one only if it calls it: the stream SDK is 11 KB of
# code and 13 KB of tables (and its debug information is part of the
# image the VMM keeps for every domain).
GUEST_FW_OPT_C := firmware/argo_stream.c
GUEST_FW_C     := $(filter-out $(GUEST_FW_OPT_C),$(wildcard firmware/*.c))
GUEST_FW_S     := $(wildcard firmware/*.S)
GUEST_FW_OBJS  := $(patsubst firmware/%.c,$(GUEST_FW_DIR)/%.o,$(GUEST_FW_C)) \
                  $(patsubst firmware/%.S,$(GUEST_FW_DIR)/%.S.o,$(GUEST_FW_S))
GUEST_FW_OPT_OBJS := $(patsubst firmware/%.c,$(GUEST_FW_DIR)/%.o,$(GUEST_FW_OPT_C))
GUEST_FW_LIB   := $(GUEST_FW_DIR)/libargovisor-opt.a
GUEST_HEADERS  := $(wildcard guest/include/*.h firmware/*.h guest/examples/*.h guest/fixtures/*.h)

GUEST_PROG_SRCS := $(wildcard guest/examples/*.c guest/fixtures/*.c)
GUEST_PROG_NAMES := $(basename $(notdir $(GUEST_PROG_SRCS)))
GUEST_ELFS      := $(patsubst %,$(GUEST_ELF_DIR)/%.elf,$(GUEST_PROG_NAMES))

ifneq ($(words $(GUEST_PROG_NAMES)),$(words $(sort $(GUEST_PROG_NAMES))))
$(error a guest name is used in both guest/examples and guest/fixtures)
endif

SDK_PREFIX ?= build/sdk

# Do not let the targets below become the includer's default goal; when
# this file is the only makefile (make -f firmware/build.mk), default to
# `guests`.
GUEST_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)
GUEST_STANDALONE := $(if $(filter 1,$(words $(MAKEFILE_LIST))),yes)

.PHONY: guests guests-clean sdk

guests: $(GUEST_ELFS)

$(GUEST_FW_DIR) $(GUEST_ELF_DIR):
	mkdir -p $@

$(GUEST_FW_DIR)/%.o: firmware/%.c $(GUEST_HEADERS) | $(GUEST_FW_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_FW_DIR)/%.S.o: firmware/%.S $(GUEST_HEADERS) | $(GUEST_FW_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_ELF_DIR)/%.o: guest/examples/%.c $(GUEST_HEADERS) | $(GUEST_ELF_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_ELF_DIR)/%.o: guest/fixtures/%.c $(GUEST_HEADERS) | $(GUEST_ELF_DIR)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_FW_LIB): $(GUEST_FW_OPT_OBJS)
	rm -f $@
	ar rcs $@ $^

$(GUEST_ELF_DIR)/%.elf: $(GUEST_ELF_DIR)/%.o $(GUEST_FW_OBJS) $(GUEST_FW_LIB) firmware/guest.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_FW_OBJS) $< $(GUEST_FW_LIB)

# Keep the objects: otherwise make treats them as intermediate files of the
# pattern rules, deletes them and relinks everything on the next run.
.SECONDARY: $(GUEST_FW_OBJS) $(GUEST_FW_OPT_OBJS) $(patsubst %,$(GUEST_ELF_DIR)/%.o,$(GUEST_PROG_NAMES))

# The guest SDK: firmware objects, linker script, headers and
# argovisor-guest.mk (firmware/sdk.mk), which a guest's own Makefile
# includes to build NAME.elf from NAME.c anywhere.
sdk: $(GUEST_FW_OBJS) $(GUEST_FW_LIB) firmware/guest.ld firmware/sdk.mk
	mkdir -p $(SDK_PREFIX)/lib/firmware $(SDK_PREFIX)/include
	cp $(GUEST_FW_OBJS) $(SDK_PREFIX)/lib/firmware/
	cp $(GUEST_FW_LIB) $(SDK_PREFIX)/lib/
	cp firmware/guest.ld $(SDK_PREFIX)/lib/
	cp guest/include/*.h $(SDK_PREFIX)/include/
	cp firmware/sdk.mk $(SDK_PREFIX)/argovisor-guest.mk
	@echo "guest SDK in $(SDK_PREFIX): include $(SDK_PREFIX)/argovisor-guest.mk from your Makefile"

guests-clean:
	rm -rf $(GUEST_FW_DIR) $(GUEST_ELF_DIR)

.DEFAULT_GOAL := $(if $(GUEST_STANDALONE),guests,$(GUEST_SAVED_DEFAULT_GOAL))
