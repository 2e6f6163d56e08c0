# SPDX-License-Identifier: MIT
# Front door: `make demo`, `make test`, `make test-tsan`, `make bench ARGS=...`.
# Each target installs the Debian packages it needs when run as root.

BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_TSAN  ?= build-tsan
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
ARGS        ?=

# Debian packages the build and the tests need (command -> package).
DEPS_BUILD = cmake:cmake ninja:ninja-build gcc:gcc g++:g++ pkg-config:pkg-config nm:binutils
DEPS_TEST  = $(DEPS_BUILD) python3:python3
# Headers (file -> package); json-c is the tickets demo's JSON library, which
# the build needs because `mproc demo tickets` is part of the command.
DEPS_HDRS  = /usr/include/criterion/criterion.h:libcriterion-dev \
             /usr/include/json-c/json.h:libjson-c-dev
# The bench's peers (Boost.Interprocess is header-only) and python3 for the
# Python ones.  Without them mproc-bench still builds and skips those peers.
DEPS_BENCH = /usr/include/boost/interprocess/ipc/message_queue.hpp:libboost-dev \
             /usr/include/zmq.h:libzmq3-dev python3:python3

.PHONY: all build deps demo test test-asan test-tsan bench valgrind install clean

all: build

deps:
	@scripts/ensure-deps.sh $(DEPS_TEST) $(DEPS_HDRS)

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: | deps
	@test -f $(BUILD)/build.ninja || cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/bin/mproc demo --all

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory test-asan

test-asan: | deps
	@test -f $(BUILD_ASAN)/build.ninja || cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMPROC_SANITIZE=address -DMPROC_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) -LE no-sanitizer

test-tsan: | deps
	@test -f $(BUILD_TSAN)/build.ninja || cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMPROC_SANITIZE=thread -DMPROC_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure -j $(JOBS) -L threads

valgrind: build
	@set -e; for t in test_lock_threads test_rlock_threads test_with test_segment test_names test_error \
		test_semaphore_threads test_event_threads test_condition_threads test_barrier_threads \
		test_value_threads test_queue_threads test_joinable_threads test_pipe_threads; do \
		echo "valgrind $$t"; \
		valgrind -q --error-exitcode=9 --trace-children=yes $(BUILD)/bin/$$t --jobs 1; done

# Installs the peers first, then configures again (an existing build dir keeps
# its settings) so that peers installed just now are found, then builds.
bench: | deps
	@scripts/ensure-deps.sh $(DEPS_BENCH)
	@if test -f $(BUILD)/build.ninja; then cmake -S . -B $(BUILD) >/dev/null; \
	else cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS); fi
	cmake --build $(BUILD) -j $(JOBS) --target mproc-bench
	$(BUILD)/bin/mproc-bench $(ARGS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
