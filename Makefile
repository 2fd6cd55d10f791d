# One non-recursive GNU make for the whole tree. Each component adds itself in
# src/<component>/module.mk. Targets:
#   make              build everything into $(B) (build/ by default)
#   make unit         run the unit tests (src/*/*_test.c)
#   make test         install missing packages, build with gcc, clang and
#                     ASan+UBSan, run unit and integration tests
#   make up           install, build, install binaries, start a single-host cluster
#   make SANITIZE=address,undefined   sanitizer build in build/asan
#   make CC=clang B=build/clang       clang build

CC ?= gcc
ifeq ($(origin CC),default)
CC = gcc
endif
SANITIZE ?=
ifneq ($(SANITIZE),)
B ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B ?= build
SANFLAGS :=
endif

PKGS := libevent libevent_openssl jansson libmnl libcurl sqlite3 openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wformat-security -Wvla -Wno-unused-parameter
ALL_CFLAGS := -std=gnu17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -Isrc/lib $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

PREFIX ?= /usr/local
BINS :=
UNIT_TESTS :=

all: build-all

# keep object files of unit tests (make would delete them as intermediates)
.SECONDARY:

# Objects: build/obj/<path>.o for every src/<path>.c
$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# A component's library: every .c of src/<comp>/ but main*.c and *_test.c.
define component
$(1)_SRCS := $$(filter-out src/$(1)/main%.c src/$(1)/%_test.c,$$(wildcard src/$(1)/*.c))
$(1)_OBJS := $$(patsubst %.c,$$(B)/obj/%.o,$$($(1)_SRCS))
$$(B)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
# Unit tests of the component link its library and lib.
$(1)_TESTS := $$(patsubst src/$(1)/%_test.c,$$(B)/test/$(1)_%_test,$$(wildcard src/$(1)/*_test.c))
$$(B)/test/$(1)_%_test: $$(B)/obj/src/$(1)/%_test.o $$(B)/lib$(1).a $$(B)/liblib.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
UNIT_TESTS += $$($(1)_TESTS)
endef

COMPONENTS := $(patsubst src/%/module.mk,%,$(wildcard src/*/module.mk))
$(foreach c,$(COMPONENTS),$(eval $(call component,$(c))))
include $(wildcard src/*/module.mk)
include $(wildcard tests/helpers/module.mk)

build-all: $(BINS) $(UNIT_TESTS)

unit: $(UNIT_TESTS)
	@scripts/run-unit $(UNIT_TESTS)

deps:
	@scripts/install-deps

test:
	@scripts/test-all

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/flynn
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	rm -rf $(DESTDIR)$(PREFIX)/lib/flynn/slugbuilder $(DESTDIR)$(PREFIX)/lib/flynn/runner
	mkdir -p $(DESTDIR)$(PREFIX)/lib/flynn
	cp -R src/slugbuilder $(DESTDIR)$(PREFIX)/lib/flynn/slugbuilder
	cp -R src/slugrunner $(DESTDIR)$(PREFIX)/lib/flynn/runner

up:
	@DOMAIN="$(DOMAIN)" scripts/up

format:
	clang-format -i $$(find src tests/helpers -name '*.[ch]')

check-format:
	@clang-format --dry-run --Werror $$(find src tests/helpers -name '*.[ch]')

clean:
	rm -rf build

.PHONY: all build-all unit deps test install up format check-format clean
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
