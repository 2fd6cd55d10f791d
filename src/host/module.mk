# src/host: flynn-host (the host daemon and its CLI) and flynn-shim (one per job).
# libhost.a holds every src/host/*.c but main*.c and *_test.c (see Makefile).
BINS += $(B)/bin/flynn-host $(B)/bin/flynn-shim
# the shim starts with every job: it links only what it needs (slug downloads,
# libcurl and OpenSSL, run in `flynn-host fetch-slug`, see slug.h)
SHIM_LIBS := $(shell pkg-config --libs jansson libmnl 2>/dev/null)
$(B)/bin/flynn-host: $(B)/obj/src/host/main.o $(B)/libhost.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/bin/flynn-shim: $(B)/obj/src/host/main_shim.o $(B)/libhost.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(SHIM_LIBS)
# flynn-init: PID 1 of attached jobs (main_init.c), bound into their containers.
# Static, and never sanitized: LeakSanitizer needs ptrace, which jobs' seccomp denies.
BINS += $(B)/bin/flynn-init
$(B)/bin/flynn-init: src/host/main_init.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -static -o $@ $<
