# src/cli: flynn, the command-line client (Flynn's CLI, same commands and output).
# libcli.a holds every src/cli/*.c but main*.c and *_test.c (see Makefile).
BINS += $(B)/bin/flynn
$(B)/bin/flynn: $(B)/obj/src/cli/main.o $(B)/libcli.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
