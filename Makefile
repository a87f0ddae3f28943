# aeon-host: the host program, the native Lua module and the store library.
#
#   make              build/aeon-host and build/aeon/core.so
#   make test         C unit tests, then the busted specs on every backend
#   make install      PREFIX=/usr/local (DESTDIR honoured)
#   make lambda       build/lambda/aeon-lambda.zip for AWS Lambda (APP=...)
#   make loadtest     good commands under hostile traffic (about 40 s)
#   make bench        the benchmark table (bench/run.lua), from an -O2 build in
#                     build/bench; not part of `make test`
#   make lint         no C function over 100 lines outside spec/ and bench/
#   make deps         install the Debian packages the build and tests need

PREFIX   ?= /usr/local
LUAVER   := 5.4
PKGS     := lua$(LUAVER) sqlite3 jansson libcurl openssl libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC       ?= cc
# The layers (docs/ARCHITECTURE.md): store/ and its backends, the aeon.core
# binding in host/bind/, the server in host/server/, the program in host/.
INCLUDES  := -Istore -Istore/sqlite -Istore/dynamodb -Ihost -Ihost/bind -Ihost/server -Ihost/lambda
HEADERS   := $(wildcard store/*.h store/*/*.h host/*.h host/*/*.h)
CFLAGS   ?= -O2 -g
# Kept apart from CFLAGS so `make CFLAGS=...` (LuaRocks does) keeps them.
ALL_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
            -Wall -Wextra -fPIC $(PKG_CFLAGS) $(INCLUDES) $(CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm

B := build


STORE_SRC := $(wildcard store/*.c store/*/*.c)
BIND_SRC  := $(wildcard host/bind/*.c)
HOST_SRC  := $(wildcard host/*.c host/server/*.c host/lambda/*.c)
CTEST_SRC := $(wildcard spec/c/*_test.c)

STORE_OBJ := $(STORE_SRC:%.c=$(B)/obj/%.o)
BIND_OBJ  := $(BIND_SRC:%.c=$(B)/obj/%.o)
HOST_OBJ  := $(HOST_SRC:%.c=$(B)/obj/%.o)
CTESTS    := $(CTEST_SRC:spec/c/%.c=$(B)/test/%)

all: $(B)/aeon-host $(B)/aeon/core.so

$(B)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libaeonstore.a: $(STORE_OBJ)
	@mkdir -p $(B)
	$(AR) rcs $@ $^

$(B)/aeon-host: $(HOST_OBJ) $(BIND_OBJ) $(B)/libaeonstore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/aeon/core.so: $(BIND_OBJ) $(B)/libaeonstore.a
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(filter-out -llua$(LUAVER) -lmicrohttpd,$(LDLIBS))

$(B)/test/%: spec/c/%.c $(B)/libaeonstore.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# Programs the specs drive (fault proxy and the like), not tests themselves.
SUPPORT := $(patsubst spec/support/%.c,$(B)/support/%,$(wildcard spec/support/*.c))

$(B)/support/%: spec/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lpthread

# The benchmark driver: a Lua interpreter with aeon.core and a `bench` module.
# It counts the DynamoDB backend's requests and connections by wrapping the
# functions that make them (see bench/bench.c).
BENCH_WRAP := -Wl,--wrap=http_call,--wrap=http_call_json,--wrap=curl_easy_perform
$(B)/aeon-bench: bench/bench.c $(B)/obj/host/host.o $(BIND_OBJ) $(B)/libaeonstore.a
	$(CC) $(ALL_CFLAGS) -DBENCH_COUNT_HTTP -o $@ $^ $(BENCH_WRAP) $(LDLIBS)

# Its own build directory and flags, so `make` and `make test` are left
# alone whatever they were built with.
BENCH_B := build/bench
bench:
	@$(MAKE) -s B=$(BENCH_B) CFLAGS="-O2 -g" $(BENCH_B)/aeon-host $(BENCH_B)/aeon-bench \
	    $(BENCH_B)/support/faultproxy
	@lua5.4 bench/run.lua $(BENCH_B)

# make lambda [APP=apps/counter-cqrs.lua]: the zip to upload to AWS Lambda
# (runtime provided.al2023), build/lambda/aeon-lambda.zip, made and checked by
# scripts/lambda-package.sh. The host is linked again with DT_RPATH
# $ORIGIN/../lib (searched before LD_LIBRARY_PATH, unlike RUNPATH), so the
# libraries shipped beside it are the ones it loads.
APP ?= apps/counter-cqrs.lua
$(B)/lambda/bin/aeon-host: $(HOST_OBJ) $(BIND_OBJ) $(B)/libaeonstore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -Wl,--disable-new-dtags,-rpath,'$$ORIGIN/../lib' -o $@ $^ $(LDLIBS)

lambda: $(B)/lambda/bin/aeon-host
	sh scripts/lambda-package.sh $(B)/lambda/bin/aeon-host $(APP) $(B)/lambda/aeon-lambda.zip

ctest: $(CTESTS)
	@set -e; for t in $(CTESTS); do echo "== $$t"; $$t; done

# The C tests run inside spec/run.sh, once DynamoDB Local is up, so their
# live DynamoDB checks run; then the specs.
test: all $(CTESTS) $(SUPPORT) lambda
	AEON_BUILD=$(B) AEON_CTESTS="$(CTESTS)" sh spec/run.sh

# The C tests and the specs again, with aeon-host, aeon.core and the store
# built under AddressSanitizer and UndefinedBehaviorSanitizer (lua5.4, which
# busted runs on, gets the ASan runtime preloaded to host the module). The
# specs run on the embedded store: with the ASan runtime preloaded, the curl
# that waits for DynamoDB Local to answer hangs, so the DynamoDB half is left
# to `make test`.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
sanitize:
	$(MAKE) B=build/sanitize CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all ctest
	$(MAKE) B=build/sanitize CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
	    build/sanitize/support/faultproxy
	AEON_SKIP_DYNAMODB=1 AEON_BUILD=build/sanitize LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 sh spec/run.sh

# Good commands under hostile traffic (spec/load/loadtest.sh): wrk's rate
# alone and beside a loop of bad requests, then a clean exit on SIGTERM.
# About 40 s, loopback only; not part of `make test`.
loadtest: all
	sh spec/load/loadtest.sh $(B)

# The store suite under valgrind on the embedded store: no invalid reads,
# no leaks of the module's own memory.
valgrind: all
	AEON_SKIP_DYNAMODB=1 VALGRIND=1 sh spec/run.sh spec/integration/store_spec.lua spec/unit/json_spec.lua

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)/aeon \
	           $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon
	install -m 755 $(B)/aeon-host $(DESTDIR)$(PREFIX)/bin/aeon-host
	install -m 644 $(B)/aeon/core.so $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)/aeon/core.so
	install -m 644 lua/aeon.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon.lua
	install -m 644 lua/aeon/*.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon/
	install -d $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon/cli
	install -m 644 lua/aeon/cli/*.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon/cli/

# What `luarocks make rockspec/aeon-scm-1.rockspec` installs, into the
# directories LuaRocks names.
install-rock: all
	install -d $(LIBDIR)/aeon $(LUADIR)/aeon $(BINDIR)
	install -m 644 $(B)/aeon/core.so $(LIBDIR)/aeon/core.so
	install -m 644 lua/aeon.lua $(LUADIR)/aeon.lua
	install -m 644 lua/aeon/*.lua $(LUADIR)/aeon/
	install -d $(LUADIR)/aeon/cli
	install -m 644 lua/aeon/cli/*.lua $(LUADIR)/aeon/cli/
	install -m 755 $(B)/aeon-host $(BINDIR)/aeon-host

# The rules of docs/ARCHITECTURE.md: a long function is cut into named
# stages (scripts/long-functions.sh lists any over 100 lines and fails), and
# every C file is as .clang-format writes it (the check names the lines).
lint:
	sh scripts/long-functions.sh 100
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

deps:
	sh scripts/setup.sh

clean:
	rm -rf $(B)

.PHONY: all ctest test bench loadtest sanitize valgrind install install-rock deps clean lambda lint

# libFuzzer harnesses (spec/fuzz/*_fuzz.c) under ASan and UBSan:
#   make fuzz                      build them into build/fuzz/
#   make fuzz-run FUZZ_SECONDS=600 run each for that long on its corpus (building
#                                  them and the sanitized aeon-host the HTTP one drives)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(PKG_CFLAGS) $(INCLUDES)
FUZZ_SRC := $(wildcard spec/fuzz/*_fuzz.c)
FUZZERS  := $(FUZZ_SRC:spec/fuzz/%.c=$(B)/fuzz/%)

$(B)/fuzz/%: spec/fuzz/%.c $(STORE_SRC) host/bind/json.c $(HEADERS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(STORE_SRC) host/bind/json.c $(LDLIBS)

fuzz: $(FUZZERS)

# http_request_fuzz sends its inputs to a sanitized aeon-host, the one
# `make sanitize` builds: fuzz-run builds it too.
fuzz-host:
	$(MAKE) B=build/sanitize CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
	    build/sanitize/aeon-host

fuzz-run: fuzz fuzz-host
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f); \
	  mkdir -p $(B)/fuzz/corpus/$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	      -artifact_prefix=$(B)/fuzz/$$n- $(B)/fuzz/corpus/$$n spec/fuzz/seeds/$$n 2>&1 | \
	      grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" ; \
	done

.PHONY: fuzz fuzz-host fuzz-run
