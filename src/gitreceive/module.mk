# src/gitreceive: flynn-gitreceive (git smart HTTP) and flynn-receiver (its
# pre-receive hook: build, slug, release, deploy).
BINS += $(B)/bin/flynn-gitreceive $(B)/bin/flynn-receiver
$(B)/bin/flynn-gitreceive: $(B)/obj/src/gitreceive/main.o $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lz
$(B)/bin/flynn-receiver: $(B)/obj/src/gitreceive/main_receiver.o $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
