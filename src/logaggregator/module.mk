# src/logaggregator: flynn-logaggregator, every job's log lines in memory, served
# to the controller and delivered to log sinks (see docs/internals/logaggregator.md).
# liblogaggregator.a holds every src/logaggregator/*.c but main*.c and *_test.c.
BINS += $(B)/bin/flynn-logaggregator
$(B)/bin/flynn-logaggregator: $(B)/obj/src/logaggregator/main.o $(B)/liblogaggregator.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
