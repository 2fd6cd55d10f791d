# src/controller: flynn-controller (the HTTP/JSON API, its store and the scheduler).
# libcontroller.a holds every src/controller/*.c but main*.c and *_test.c (see Makefile).
BINS += $(B)/bin/flynn-controller
$(B)/bin/flynn-controller: $(B)/obj/src/controller/main.o $(B)/libcontroller.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
