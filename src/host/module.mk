# src/host: flynn-host (the host daemon and its CLI) and flynn-shim (one per job).
# libhost.a holds every src/host/*.c but main*.c and *_test.c (see Makefile).
BINS += $(B)/bin/flynn-host $(B)/bin/flynn-shim
$(B)/bin/flynn-host: $(B)/obj/src/host/main.o $(B)/libhost.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/bin/flynn-shim: $(B)/obj/src/host/main_shim.o $(B)/libhost.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -ljansson -lmnl
