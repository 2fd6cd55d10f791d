# src/router: flynn-router, the HTTP/HTTPS/TCP reverse proxy (see docs/internals/router.md).
# librouter.a holds every src/router/*.c but main*.c (main.c, main_fuzz.c) and *_test.c.
# Extra libraries beyond PKGS: http-parser (libhttp-parser-dev), nghttp2 (libnghttp2-dev).
ROUTER_LIBS := -lhttp_parser $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2)
BINS += $(B)/bin/flynn-router
$(B)/bin/flynn-router: $(B)/obj/src/router/main.o $(B)/librouter.a $(B)/liblib.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ROUTER_LIBS) $(PKG_LIBS)

# libFuzzer target for the HTTP/1 parser (clang only, not part of `make`):
#   make CC=clang B=build/fuzz build/fuzz/bin/router-fuzz
FUZZFLAGS := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
$(B)/bin/router-fuzz: src/router/main_fuzz.c src/router/h1.c src/router/h1.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu17 -D_GNU_SOURCE -O1 -g $(FUZZFLAGS) -Isrc/lib -o $@ src/router/main_fuzz.c src/router/h1.c -lhttp_parser

# unit tests link the parser libraries too
$(B)/test/router_%_test: PKG_LIBS += $(ROUTER_LIBS)
