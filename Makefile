# flare-tools (C++): plain `make` builds one static binary installed as flare-admin and flare-stats.
CXX      ?= g++
CXXFLAGS ?= -O2
WARN      = -std=c++17 -Wall -Wextra -Werror
LDSTATIC ?= -static
PREFIX   ?= /usr/local
DESTDIR  ?=
SAN       = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

UNIT_SRC  = tests/test_main.cpp tests/test_addresses.cpp tests/test_protocol.cpp tests/test_cluster.cpp \
            tests/test_formatting.cpp tests/test_socket.cpp tests/test_second_unit.cpp \
            tests/test_keyhash.cpp tests/test_data.cpp tests/test_fuzz_findings.cpp tests/test_deploy_keycheck.cpp
INTEG_SRC = tests/test_main.cpp tests/test_cli_readonly.cpp tests/test_cli_admin.cpp tests/test_cli_data.cpp \
            tests/test_cli_hostile.cpp tests/test_cli_deploy_keycheck.cpp
HDRS      = flare_tools.hpp

.PHONY: all install test test-plain test-sanitize test-header static-check fuzz fuzz-run demo bench clean check-doctest

all: flare-admin flare-stats

flare-admin: cli.cpp $(HDRS)
	$(CXX) $(WARN) $(CXXFLAGS) -o $@ cli.cpp $(LDSTATIC)

flare-stats: flare-admin
	ln -sf flare-admin $@

# A program named flare-SUB runs subcommand SUB; these are 0.7.3's names. ADMIN_BIN lets the
# tests install the binary they built.
SHORT_NAMES = flare-stats flare-ping flare-part flare-deploy
ADMIN_BIN  ?= flare-admin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

install: $(ADMIN_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(ADMIN_BIN) $(DESTDIR)$(PREFIX)/bin/flare-admin
	install -m 0644 doc/flare-admin.1 $(DESTDIR)$(MANDIR)/man1/flare-admin.1
	install -m 0644 contrib/bash-completion/flare-admin $(DESTDIR)$(BASHCOMPDIR)/flare-admin
	for n in $(SHORT_NAMES); do \
	  ln -sf flare-admin $(DESTDIR)$(PREFIX)/bin/$$n; \
	  ln -sf flare-admin.1 $(DESTDIR)$(MANDIR)/man1/$$n.1; \
	  ln -sf flare-admin $(DESTDIR)$(BASHCOMPDIR)/$$n; \
	done

# ---- tests: doctest unit tests, then integration tests that run the built binary against
# tests/fake-flare; everything again under AddressSanitizer + UndefinedBehaviorSanitizer.
check-doctest:
	@tests/ensure-doctest

build/plain/%: | build/plain
build/plain build/san:
	mkdir -p $@

build/plain/flare-admin: cli.cpp $(HDRS) | build/plain
	$(CXX) $(WARN) -O1 -g -o $@ cli.cpp
build/plain/fake-flare: tests/fake_flare.cpp | build/plain
	$(CXX) $(WARN) -O2 -g -pthread -o $@ tests/fake_flare.cpp
build/plain/unit: $(UNIT_SRC) $(HDRS) tests/*.hpp | build/plain
	$(CXX) $(WARN) -O1 -g -I. -o $@ $(UNIT_SRC) -pthread
build/plain/integration: $(INTEG_SRC) $(HDRS) tests/*.hpp | build/plain
	$(CXX) $(WARN) -O1 -g -I. -o $@ $(INTEG_SRC) -pthread

build/san/flare-admin: cli.cpp $(HDRS) | build/san
	$(CXX) $(WARN) -O1 -g $(SAN) -o $@ cli.cpp
build/san/fake-flare: tests/fake_flare.cpp | build/san
	$(CXX) $(WARN) -O1 -g $(SAN) -pthread -o $@ tests/fake_flare.cpp
build/san/unit: $(UNIT_SRC) $(HDRS) tests/*.hpp | build/san
	$(CXX) $(WARN) -O1 -g $(SAN) -I. -o $@ $(UNIT_SRC) -pthread
build/san/integration: $(INTEG_SRC) $(HDRS) tests/*.hpp | build/san
	$(CXX) $(WARN) -O1 -g $(SAN) -I. -o $@ $(INTEG_SRC) -pthread

# Each suite's output is kept in build/*/NAME.log for the closing count.
RUN_LOGGED = run() { log=$$1; shift; "$$@" > $$log 2>&1; st=$$?; cat $$log; return $$st; }; run

test-plain: check-doctest build/plain/flare-admin build/plain/fake-flare build/plain/unit build/plain/integration
	@$(RUN_LOGGED) build/plain/unit.log build/plain/unit
	@$(RUN_LOGGED) build/plain/integration.log env FLARE_TEST_RSS_LIMIT_KB=16384 FLARE_ADMIN=build/plain/flare-admin \
	  FAKE_FLARE=build/plain/fake-flare build/plain/integration

test-sanitize: check-doctest build/san/flare-admin build/san/fake-flare build/san/unit build/san/integration
	@$(RUN_LOGGED) build/san/unit.log env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/san/unit
	@$(RUN_LOGGED) build/san/integration.log env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  FLARE_ADMIN=build/san/flare-admin FAKE_FLARE=build/san/fake-flare build/san/integration

# The header must compile on its own, pedantic.
test-header:
	$(CXX) $(WARN) -pedantic -fsyntax-only -x c++ flare_tools.hpp

test: test-header test-plain test-sanitize
	@cat build/plain/unit.log build/plain/integration.log build/san/unit.log build/san/integration.log | \
	  awk -F'|' '/\[doctest\] test cases:/ { split($$2, p, " "); split($$3, f, " "); P += p[1]; F += f[1] } \
	             END { printf "%d passed, %d failed\n", P, F; exit (F > 0) }' 

# Static analysis: cppcheck must report nothing. Two style checks are off, on purpose:
#  - useStlAlgorithm: it asks for std::any_of/accumulate in place of plain loops over a few
#    items; the loops read better and cost the same.
#  - shadowFunction: a local `peer`, `fd` or `deadline` beside an accessor of the same name in
#    the class is deliberate (the local is a copy taken before close()).
static-check:
	cppcheck --enable=warning,style,performance,portability --std=c++17 --language=c++ --quiet \
	  --error-exitcode=1 --inline-suppr --suppress=useStlAlgorithm --suppress=shadowFunction \
	  -I. flare_tools.hpp cli.cpp

# libFuzzer targets for every parser (needs clang); `make fuzz-run FUZZ_SECONDS=N` runs each.
FUZZ_SECONDS ?= 30
fuzz:
	tests/fuzz/run.sh 0
fuzz-run:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# ---- a cluster of your own on loopback, to see the tools work
demo: all build/plain/fake-flare
	@tests/demo.sh ./flare-admin build/plain/fake-flare

bench: all build/plain/fake-flare
	bench/stats_bench.sh ./flare-admin build/plain/fake-flare

clean:
	rm -rf build flare-admin flare-stats
