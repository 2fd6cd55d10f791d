# src/blobstore: flynn-blobstore, the cluster's blob store (see docs/internals/blobstore.md).
# libblobstore.a holds every src/blobstore/*.c but main*.c and *_test.c (see Makefile).
# Extra library beyond PKGS: http-parser (libhttp-parser-dev).
BLOBSTORE_LIBS := -lhttp_parser
BINS += $(B)/bin/flynn-blobstore
$(B)/bin/flynn-blobstore: $(B)/obj/src/blobstore/main.o $(B)/libblobstore.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(BLOBSTORE_LIBS) $(PKG_LIBS)

# unit tests link the parser too
$(B)/test/blobstore_%_test: PKG_LIBS += $(BLOBSTORE_LIBS)
