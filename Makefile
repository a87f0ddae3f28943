# aeon-host: the host program, the native Lua module and the store library.
#
#   make              build/aeon-host and build/aeon/core.so
#   make test         C unit tests, then the busted specs on every backend
#   make install      PREFIX=/usr/local (DESTDIR honoured)
#   make deps         install the Debian packages the build and tests need

PREFIX   ?= /usr/local
LUAVER   := 5.4
PKGS     := lua$(LUAVER) sqlite3 jansson libcurl openssl libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC       ?= cc
CFLAGS   ?= -O2 -g
# Kept apart from CFLAGS so `make CFLAGS=...` (LuaRocks does) keeps them.
ALL_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
            -Wall -Wextra -fPIC $(PKG_CFLAGS) -Istore -Ihost $(CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm

B := build

STORE_SRC := $(wildcard store/*.c)
BIND_SRC  := $(wildcard host/bind_*.c) host/json.c
HOST_SRC  := $(filter-out $(BIND_SRC),$(wildcard host/*.c))
CTEST_SRC := $(wildcard spec/c/*_test.c)

STORE_OBJ := $(STORE_SRC:%.c=$(B)/obj/%.o)
BIND_OBJ  := $(BIND_SRC:%.c=$(B)/obj/%.o)
HOST_OBJ  := $(HOST_SRC:%.c=$(B)/obj/%.o)
CTESTS    := $(CTEST_SRC:spec/c/%.c=$(B)/test/%)

all: $(B)/aeon-host $(B)/aeon/core.so

$(B)/obj/%.o: %.c $(wildcard store/*.h host/*.h)
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

ctest: $(CTESTS)
	@set -e; for t in $(CTESTS); do echo "== $$t"; $$t; done

test: all ctest
	sh spec/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)/aeon \
	           $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon
	install -m 755 $(B)/aeon-host $(DESTDIR)$(PREFIX)/bin/aeon-host
	install -m 644 $(B)/aeon/core.so $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)/aeon/core.so
	install -m 644 lua/aeon.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon.lua
	install -m 644 lua/aeon/*.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)/aeon/

# What `luarocks make rockspec/aeon-scm-1.rockspec` installs, into the
# directories LuaRocks names.
install-rock: all
	install -d $(LIBDIR)/aeon $(LUADIR)/aeon $(BINDIR)
	install -m 644 $(B)/aeon/core.so $(LIBDIR)/aeon/core.so
	install -m 644 lua/aeon.lua $(LUADIR)/aeon.lua
	install -m 644 lua/aeon/*.lua $(LUADIR)/aeon/
	install -m 755 $(B)/aeon-host $(BINDIR)/aeon-host

deps:
	sh scripts/setup.sh

clean:
	rm -rf $(B)

.PHONY: all ctest test install install-rock deps clean
