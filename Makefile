# flare-tools (C++): plain `make` builds one static binary installed as flare-admin and flare-stats.
CXX      ?= g++
CXXFLAGS ?= -O2
STD      ?= c++17
# Warnings are shown; WERROR=1 makes them errors. Plain `make` leaves it off, so that a
# compiler newer than ours does not stop a user's build over a new warning; `make test`,
# `make matrix` and CI (.ci/run) turn it on (override on the command line either way).
WERROR   ?= 0
WFLAGS    = -Wall -Wextra $(if $(filter-out 0,$(WERROR)),-Werror)
WARN      = -std=$(STD) $(WFLAGS)
LDSTATIC ?= -static
PREFIX   ?= /usr/local
DESTDIR  ?=
# UBSan's vptr check is left out: it instruments every member access of a polymorphic type, a
# fifth of the sanitized builds' compile time (cli.cpp: 36 s of CPU -> 29 s), for a code base
# whose one class hierarchy is its exceptions.
SAN       = -fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer -fno-sanitize-recover=undefined

UNIT_SRC  = tests/test_main.cpp tests/test_addresses.cpp tests/test_protocol.cpp tests/test_cluster.cpp \
            tests/test_formatting.cpp tests/test_socket.cpp tests/test_second_unit.cpp \
            tests/test_keyhash.cpp tests/test_data.cpp tests/test_fuzz_findings.cpp tests/test_deploy_keycheck.cpp
INTEG_SRC = tests/test_main.cpp tests/test_cli_readonly.cpp tests/test_cli_admin.cpp tests/test_cli_data.cpp \
            tests/test_cli_hostile.cpp tests/test_replay.cpp tests/test_cli_deploy_keycheck.cpp
# Prometheus output and clusters of thousands of nodes (issue 9, parts 3 and 4).
UNIT_SRC  += tests/test_prometheus.cpp
INTEG_SRC += tests/test_cli_scale.cpp
# The waits of the construction commands, and a change run again after an interruption (issues 17, 18).
INTEG_SRC += tests/test_cli_resume_changes.cpp
# Files written safely (issue 23).
INTEG_SRC += tests/test_cli_files.cpp
# Real clusters' hard cases: index identity, node map versions, smaller wrong answers (issue 17).
INTEG_SRC += tests/test_cli_cluster_truth.cpp
UNIT_SRC  += tests/test_output_file.cpp
# The header's layout: Part 1 declares every public name, Part 2 implements (issue 36).
UNIT_SRC  += tests/test_header_layout.cpp
UNIT_SRC += tests/test_portable_sockets.cpp
# Keys the text protocol cannot frame (issue 17, parts 1 and 2).
INTEG_SRC += tests/test_cli_framing.cpp
# One convention for streams, exit codes, options and completion (issue 19).
INTEG_SRC += tests/test_cli_convention.cpp
INTEG_SRC += tests/test_cli_check.cpp
# The fake's event loop answers as its worker threads do (issue 20's benchmark needs it).
INTEG_SRC += tests/test_fake_event_loop.cpp
# Before and around a failover: replication lag, draining, the slaves asked, Ctrl-C (issues 17.3, 18.3-4).
INTEG_SRC += tests/test_cli_failover.cpp
# Restore straight to every master, and safe resume advice after a failover (issues 21, 18.1).
INTEG_SRC += tests/test_cli_restore_routing.cpp
# The process's edges: closed descriptors, failed writes, every signal, leftovers (issue 33).
INTEG_SRC += tests/test_cli_edges.cpp
UNIT_SRC  += tests/test_framing.cpp
# Layouts and the plans that reach them: flare-admin apply (issue 34).
UNIT_SRC  += tests/test_layout.cpp
# The exporter's HTTP server (issue 37).
UNIT_SRC  += tests/test_exporter.cpp
INTEG_SRC += tests/test_cli_apply.cpp
# The programs of examples/ against the fake (issue 36).
INTEG_SRC += tests/test_examples.cpp
# flare-exporter as a process (issue 37).
INTEG_SRC += tests/test_cli_exporter.cpp
HDRS      = flare_tools.hpp

.PHONY: all install test test-plain test-sanitize test-header static-check check-rules fuzz fuzz-run demo bench clean check-doctest check-python
.PHONY: matrix matrix-portable

all: flare-admin flare-stats

flare-admin: cli.cpp $(HDRS)
	$(CXX) $(WARN) $(CXXFLAGS) -o $@ cli.cpp $(LDSTATIC)

flare-stats: flare-admin
	ln -sf flare-admin $@

# A program named flare-SUB runs subcommand SUB; these are 0.7.3's names. ADMIN_BIN lets the
# tests install the binary they built.
SHORT_NAMES = flare-stats flare-ping flare-part flare-deploy flare-check flare-exporter
ADMIN_BIN  ?= flare-admin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

install: $(ADMIN_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(ADMIN_BIN) $(DESTDIR)$(PREFIX)/bin/flare-admin
	install -m 0644 flare_tools.hpp $(DESTDIR)$(PREFIX)/include/flare_tools.hpp
	install -m 0644 doc/flare-admin.1 $(DESTDIR)$(MANDIR)/man1/flare-admin.1
	install -m 0644 contrib/bash-completion/flare-admin $(DESTDIR)$(BASHCOMPDIR)/flare-admin
	for n in $(SHORT_NAMES); do \
	  ln -sf flare-admin $(DESTDIR)$(PREFIX)/bin/$$n; \
	  ln -sf flare-admin.1 $(DESTDIR)$(MANDIR)/man1/$$n.1; \
	  ln -sf flare-admin $(DESTDIR)$(BASHCOMPDIR)/$$n; \
	done

# The tests build warning-free or not at all.
test test-plain test-sanitize test-header matrix matrix-portable: WERROR = 1

# ---- tests: doctest unit tests, then integration tests that run the built binary against
# tests/fake-flare; everything again under AddressSanitizer + UndefinedBehaviorSanitizer.
# `make test` builds everything (TEST_JOBS compilations at once, default: the number of cores);
# tests/run-suites runs each suite's unit and integration tests side by side, the integration
# cases in TEST_RUNNERS processes (they mostly wait on fakes and timeouts), and prints a line as
# each part ends, then the closing count.
NPROC        := $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
TEST_JOBS    ?= $(NPROC)
TEST_RUNNERS ?= 10
# The test programs are built at -O0 (3x faster to compile), each suite's test files as one
# translation unit (the header and doctest compiled once, not once per file) beside
# test_main.cpp (doctest's runner) and test_second_unit.cpp (which checks that the header links
# from two units). `make matrix` still compiles every file alone at -O1, for the optimizer's
# warnings.
# -g1 (line tables) everywhere in the tests: ASan's and gdb's backtraces keep their file:line,
# and it compiles in half the time of full -g (cli.cpp at -O1: 23 s of CPU against 49 s here).
TEST_G       ?= -g1
TEST_OPT     ?= -O0 $(TEST_G)
UNIT_ALONE    = tests/test_main.cpp tests/test_second_unit.cpp
UNIT_UNITY    = $(filter-out $(UNIT_ALONE),$(UNIT_SRC))
INTEG_UNITY   = $(filter-out tests/test_main.cpp,$(INTEG_SRC))

check-doctest:
	@tests/ensure-doctest
# tests/run-suites, which runs the suites, is a Python 3 script.
check-python:
	@command -v python3 >/dev/null 2>&1 || { echo "make test needs python3 (apt-get install python3)" >&2; exit 1; }

build/plain build/san:
	mkdir -p $@

# The plain suite's tool is linked statically, as the binary operators copy to their hosts (a
# static glibc resolves names through the host's NSS libraries: the tests see that too), and
# built at -O0: 15 s of CPU against 28 s at -O1, and the plain cases took the same CPU with
# either (51 s). The optimizer's warnings are `make matrix`'s (-O1), the release build's -O2.
build/plain/flare-admin: cli.cpp $(HDRS) | build/plain
	$(CXX) $(WARN) -O0 $(TEST_G) -o $@ cli.cpp $(LDSTATIC)
build/plain/fake-flare: tests/fake_flare.cpp | build/plain
	$(CXX) $(WARN) -O2 $(TEST_G) -pthread -o $@ tests/fake_flare.cpp
# The sanitized tool and fake are linked as position-dependent executables: the suites start
# them thousands of times, and a PIE of their size spent half its start-up relocating itself
# (`--version`: 64 ms of CPU against 30 ms here; perf: _dl_relocate_object and page faults).
SAN_EXE   = -fno-pie -no-pie
# The tool and the fake, which the sanitized suite starts about 1,600 times, leave out three of
# UBSan's checks: null (ASan reports the dereference itself), alignment (x86; the code reads
# peers' bytes through unsigned char only) and pointer-overflow (ASan reports the access). Their
# check sites were 8 MB of .data, which LeakSanitizer scans at every exit (81 ms a run of
# `--version` against 42 ms, with the sanitizer runtimes linked in statically: no relocations
# of a shared libasan), and half the tool's compile time (42 s of CPU against 23 s). The unit
# tests, which run the header's code in-process, keep every check ($(SAN)).
SAN_PROG  = $(SAN) -fno-sanitize=null,alignment,pointer-overflow -static-libasan -static-libubsan $(SAN_EXE)
build/san/flare-admin: cli.cpp $(HDRS) | build/san
	$(CXX) $(WARN) -O0 $(TEST_G) $(SAN_PROG) -o $@ cli.cpp
build/san/fake-flare: tests/fake_flare.cpp | build/san
	$(CXX) $(WARN) -O1 $(TEST_G) $(SAN_PROG) -pthread -o $@ tests/fake_flare.cpp

# $(1): plain or san; $(2): its extra flags; $(3): its integration test program, if its own;
# $(4): its unit test program's objects beside unit_all.o (the two-unit link check, a test of
# the linker, runs in the plain suite only). The sanitized tool is built at -O0: at -O1 it takes
# 3x as long to compile (about 130 s of CPU) for no finding the tests would not make at -O0.
define test_suite_rules
$(1)_FLAGS = $$(WARN) $$(TEST_OPT) $(2) -pthread -I.
build/$(1)/unity/%.cpp: Makefile | check-doctest
	@mkdir -p $$(@D)
	@printf '// Generated by the Makefile: one translation unit of the suite.\n' > $$@.new
	@for f in $$(if $$(filter unit_all,$$*),$$(UNIT_UNITY),$$(INTEG_UNITY)); do printf '#include "%s"\n' "$$$$f" >> $$@.new; done
	@cmp -s $$@.new $$@ && rm -f $$@.new || mv $$@.new $$@
build/$(1)/obj/unit_all.o: build/$(1)/unity/unit_all.cpp $$(UNIT_UNITY) $$(HDRS) tests/*.hpp
	@mkdir -p $$(@D)
	$$(CXX) $$($(1)_FLAGS) -c -o $$@ $$<
build/$(1)/obj/integration_all.o: build/$(1)/unity/integration_all.cpp $$(INTEG_UNITY) $$(HDRS) tests/*.hpp
	@mkdir -p $$(@D)
	$$(CXX) $$($(1)_FLAGS) -c -o $$@ $$<
build/$(1)/obj/%.o: tests/%.cpp $$(HDRS) tests/*.hpp | check-doctest
	@mkdir -p $$(@D)
	$$(CXX) $$($(1)_FLAGS) -c -o $$@ $$<
# doctest's runner (test_main.o) and the two-unit link check (test_second_unit.o) are the plain
# suite's in both: they hold none of the code the sanitizers check.
build/$(1)/unit: build/plain/obj/test_main.o $(4) build/$(1)/obj/unit_all.o
	$$(CXX) $$($(1)_FLAGS) -o $$@ $$^
build/$(1)/integration: build/plain/obj/test_main.o build/$(1)/obj/integration_all.o
	$$(CXX) $$($(1)_FLAGS) -o $$@ $$^
# The longest compilations first, so that -j keeps every core busy to the end.
test-build-$(1): check-doctest $(3) build/$(1)/flare-admin build/$(1)/fake-flare build/$(1)/unit
endef
# The sanitized suite's integration cases run the sanitized tool and fake, driven by the plain
# build of the test program (build/plain/integration): it only starts them and reads what they
# print, and compiling it again with the sanitizers cost a minute of CPU. The header code it
# shares with them is checked under the sanitizers by the unit tests and by the tool itself.
$(eval $(call test_suite_rules,plain,,build/plain/integration,build/plain/obj/test_second_unit.o))
$(eval $(call test_suite_rules,san,$(SAN),,build/plain/obj/test_second_unit.o))

# The programs of examples/ (what a vendoring user writes; the README shows them): built beside
# the plain suite and run against the fake by tests/test_examples.cpp, in both suites.
EXAMPLES     := $(wildcard examples/*.cpp)
EXAMPLE_BINS := $(patsubst examples/%.cpp,build/plain/examples/%,$(EXAMPLES))
build/plain/examples/%: examples/%.cpp $(HDRS) | build/plain
	@mkdir -p $(@D)
	$(CXX) $(WARN) -O0 -I. -o $@ $<
test-build-plain: $(EXAMPLE_BINS)

.PHONY: test-build-plain test-build-san
test-plain: check-python
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) WERROR=$(WERROR) test-build-plain
	@tests/run-suites -j $(TEST_RUNNERS) plain
test-sanitize: check-python
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) WERROR=$(WERROR) test-build-san build/plain/integration $(EXAMPLE_BINS)
	@tests/run-suites -j $(TEST_RUNNERS) san

# The header must compile on its own, pedantic.
test-header:
	$(CXX) $(WARN) -pedantic -fsyntax-only -x c++ flare_tools.hpp

# One build of everything, and each part (the plain suite's integration cases, the sanitized
# suite's integration cases and its unit tests) starts as soon as its own programs are built:
# the compilers and the cases keep the cores busy together, with no wait between a build and a
# run. tests/run-suites starts the build (its output in build/build.log, shown if it fails) and
# the parts. The goals' order is the build's: the longest compilation (the sanitized unit tests,
# 48 s of CPU) first, so that it is not left alone at the end, then the integration cases'.
# The unit cases run once, in the sanitized build; `make test-plain` runs them without (they are
# the same cases: a second run cost 32 s of CPU, 16 s of `make test` on two cores).
TEST_PARTS = build/san/unit.built build/plain/integration.built build/san/integration.built
build/plain/integration.built: build/plain/flare-admin build/plain/fake-flare build/plain/integration $(EXAMPLE_BINS)
	@touch $@
build/san/integration.built: build/san/flare-admin build/san/fake-flare build/plain/integration
	@touch $@
build/san/unit.built: build/san/unit
	@touch $@
test: check-doctest check-python | build/plain build/san
	@rm -f $(TEST_PARTS)
	@tests/run-suites -j $(TEST_RUNNERS) \
	  --build "$(MAKE) --no-print-directory -j$(TEST_JOBS) WERROR=$(WERROR) $(TEST_PARTS) test-header" \
	  plain:integration san
build/plain/.ready: test-build-plain
	@touch $@
build/san/.ready: test-build-san
	@touch $@

# ---- make matrix (CI): the header alone, the CLI, fake-flare and both test binaries with each
# compiler and standard, compiled and linked (`make test` runs the suites, once); then the
# socket tests built on the fallback for systems without MSG_NOSIGNAL/SOCK_CLOEXEC (forced on
# Linux by FLARE_TOOLS_PORTABLE_SOCKETS) and run. Needs clang++ as well as g++.
# -O1: some of g++'s warnings come from the optimizer.
MATRIX_CXX  ?= g++ clang++
MATRIX_STD  ?= c++17 c++20
MATRIX_OPT   = -O1
MATRIX_OBJS  = $(patsubst tests/%.cpp,%.o,$(sort $(UNIT_SRC) $(INTEG_SRC)))
MATRIX_CELLS =

# One cell: $(1) compiler, $(2) standard; everything in build/matrix/$(1)-$(2)/. The header is
# also checked on the fallback, plain (as on Linux) and with SO_NOSIGPIPE (as on macOS and the
# BSDs; Linux has no such option, so a made-up value stands in: compiled, never run).
define matrix_cell
MATRIX_CELLS += build/matrix/$(1)-$(2)/built
build/matrix/$(1)-$(2)/header.ok: $$(HDRS)
	@mkdir -p $$(@D)
	$(1) -std=$(2) $$(WFLAGS) -pedantic -fsyntax-only -x c++ flare_tools.hpp
	$(1) -std=$(2) $$(WFLAGS) -pedantic -fsyntax-only \
	  -DFLARE_TOOLS_PORTABLE_SOCKETS -x c++ flare_tools.hpp
	$(1) -std=$(2) $$(WFLAGS) -pedantic -fsyntax-only \
	  -DFLARE_TOOLS_PORTABLE_SOCKETS -DSO_NOSIGPIPE=0x1022 -x c++ flare_tools.hpp
	@touch $$@
build/matrix/$(1)-$(2)/cli.o: cli.cpp $$(HDRS)
	@mkdir -p $$(@D)
	$(1) -std=$(2) $$(WFLAGS) $$(MATRIX_OPT) -c -o $$@ cli.cpp
build/matrix/$(1)-$(2)/%.o: tests/%.cpp $$(HDRS) tests/*.hpp | check-doctest
	@mkdir -p $$(@D)
	$(1) -std=$(2) $$(WFLAGS) $$(MATRIX_OPT) -pthread -I. -c -o $$@ $$<
build/matrix/$(1)-$(2)/built: build/matrix/$(1)-$(2)/header.ok build/matrix/$(1)-$(2)/cli.o \
    build/matrix/$(1)-$(2)/fake_flare.o $$(addprefix build/matrix/$(1)-$(2)/,$$(MATRIX_OBJS))
	$(1) -o build/matrix/$(1)-$(2)/flare-admin build/matrix/$(1)-$(2)/cli.o
	$(1) -o build/matrix/$(1)-$(2)/fake-flare build/matrix/$(1)-$(2)/fake_flare.o -pthread
	$(1) -o build/matrix/$(1)-$(2)/unit $$(addprefix build/matrix/$(1)-$(2)/,$$(patsubst tests/%.cpp,%.o,$$(UNIT_SRC))) -pthread
	$(1) -o build/matrix/$(1)-$(2)/integration \
	  $$(addprefix build/matrix/$(1)-$(2)/,$$(patsubst tests/%.cpp,%.o,$$(INTEG_SRC))) -pthread
	@echo "matrix: $(1) -std=$(2): header, flare-admin, fake-flare, unit, integration built"
	@touch $$@
endef
$(foreach c,$(MATRIX_CXX),$(foreach s,$(MATRIX_STD),$(eval $(call matrix_cell,$(c),$(s)))))

# The fallback socket layer, forced on Linux: the tests that send and connect, run.
PORTABLE_SRC = tests/test_main.cpp tests/test_socket.cpp tests/test_data.cpp tests/test_portable_sockets.cpp
build/matrix/portable/%.o: tests/%.cpp $(HDRS) tests/*.hpp | check-doctest
	@mkdir -p $(@D)
	$(CXX) $(WARN) $(MATRIX_OPT) -g -pthread -DFLARE_TOOLS_PORTABLE_SOCKETS -I. -c -o $@ $<
build/matrix/portable/unit: $(patsubst tests/%.cpp,build/matrix/portable/%.o,$(PORTABLE_SRC))
	$(CXX) -o $@ $^ -pthread
RUN_LOGGED = run() { log=$$1; shift; "$$@" > $$log 2>&1; st=$$?; cat $$log; return $$st; }; run
matrix-portable: build/matrix/portable/unit
	@echo "matrix: socket tests on the fallback (FLARE_TOOLS_PORTABLE_SOCKETS: no MSG_NOSIGNAL, no SOCK_CLOEXEC)"
	@$(RUN_LOGGED) build/matrix/portable/unit.log build/matrix/portable/unit

matrix: $(MATRIX_CELLS) matrix-portable
	@echo "matrix: $(words $(MATRIX_CELLS)) builds ($(MATRIX_CXX) x $(MATRIX_STD)) warning-free; fallback socket tests passed"

# Static analysis: cppcheck must report nothing. Two style checks are off, on purpose:
#  - useStlAlgorithm: it asks for std::any_of/accumulate in place of plain loops over a few
#    items; the loops read better and cost the same.
#  - shadowFunction: a local `peer`, `fd` or `deadline` beside an accessor of the same name in
#    the class is deliberate (the local is a copy taken before close()).
static-check:
	cppcheck --enable=warning,style,performance,portability --std=c++17 --language=c++ --quiet \
	  --error-exitcode=1 --inline-suppr --suppress=useStlAlgorithm --suppress=shadowFunction \
	  -I. flare_tools.hpp cli.cpp

# The Prometheus alert rules of contrib/: promtool's own check, and its unit test of them (real
# figures in, the alerts expected out), where promtool is installed (Debian: prometheus); tests/test_cli_check.cpp reads them with a parser of its own always.
check-rules:
	@if command -v promtool >/dev/null 2>&1; then promtool check rules contrib/prometheus/flare-alerts.yml && \
	  promtool test rules contrib/prometheus/flare-alerts.test.yml && \
	  promtool check config contrib/prometheus/scrape-config.yml; \
	else echo "check-rules: no promtool here; the integration tests check the rules with their own parser"; fi

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
	bench/check_bench.sh ./flare-admin build/plain/fake-flare

clean:
	rm -rf build flare-admin flare-stats
