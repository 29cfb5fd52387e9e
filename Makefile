# Makefile for isrf: the PostgreSQL extension (PGXS), the CUDA backend library
# (nvcc, loaded with dlopen only where a GPU is used), the standalone driver
# and the C unit tests of src/core.
#
#   make                 isrf.so, isrf_cuda.so (when CUDA is found), driver
#   make USE_CUDA=0      without the CUDA backend
#   make install         installs the extension, the CUDA library, the driver
#   make unit            builds and runs the C unit tests (no PostgreSQL)
#   make fuzz            builds the libFuzzer harnesses (clang; bench/fuzz.sh runs them)
#   make installcheck    pg_regress against a running server
#   bash test/run_tests.sh   everything, on a fresh machine (see README.md)

EXTENSION = isrf
MODULE_big = isrf
DATA = sql/isrf--0.1.sql
PGFILEDESC = "isrf - in-database generative recommender (ISRF)"

# src/core is in rooms (src/core/<room>/*.c); every object is built under
# build/, none beside the sources.
BUILD := build
CORE_SRCS := $(sort $(wildcard src/core/*/*.c))
CORE_HDRS := $(wildcard src/core/*/*.h)
PG_SRCS := $(sort $(wildcard src/pg/*.c))
EXT_PG_OBJS := $(patsubst src/%.c,$(BUILD)/ext/%.o,$(PG_SRCS))
EXT_CORE_OBJS := $(patsubst src/%.c,$(BUILD)/ext/%.o,$(CORE_SRCS))
OBJS = $(EXT_PG_OBJS) $(EXT_CORE_OBJS)

REGRESS = setup backend datasets synthetic privileges catalogue train serve live deploy partitioned training_sessions llm search_path
REGRESS_OPTS = --load-extension=isrf

# libstemmer starts no threads; the BLAS (which does) is found with dlopen at
# run time by src/core/cpu_backend.c, never linked here.  libcurl (the LLM
# client, src/pg/llm_client.c) starts no thread when loaded: it is
# initialised on first use in a backend or worker, never in the postmaster.
SHLIB_LINK += -lstemmer -lcurl -ldl -lm -lpthread
PG_CPPFLAGS = -I$(srcdir)/src/core
PG_CFLAGS = -Wall -Wextra -Werror

# No LLVM bitcode of our objects: nothing of isrf is worth inlining into
# JIT-compiled expressions, and PGXS would build it beside the sources.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(BUILD)/ext/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CPPFLAGS) -c -o $@ $<

# PostgreSQL's headers are not -Wextra clean: make them system headers so
# -Werror applies to our code only.
override CPPFLAGS := $(patsubst -I$(includedir_server),-isystem $(includedir_server),$(patsubst -I$(includedir_internal),-isystem $(includedir_internal),$(CPPFLAGS)))

# PGXS does not track header dependencies: rebuild every object when a
# header changes (a struct layout out of step is a crash, not a warning).
$(OBJS): $(CORE_HDRS) $(wildcard src/pg/*.h)

# src/core is plain C11 and may declare where it uses.
$(EXT_CORE_OBJS): override CFLAGS += -Wno-declaration-after-statement

# ---------------------------------------------------------------------------
# Engine objects for tools and tests, built without PostgreSQL's flags.
CORE_CC ?= gcc
CORE_CFLAGS ?= -O2 -g -std=gnu11 -fPIC -Wall -Wextra -Werror
CORE_LIBS := -lstemmer -ldl -lm -lpthread
CORE_TOOL_OBJS := $(patsubst src/core/%.c,$(BUILD)/core/%.o,$(CORE_SRCS))

$(BUILD)/core/%.o: src/core/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) -Isrc/core -c $< -o $@

# Standalone driver: the engine with no PostgreSQL.
DRIVER_SRCS := $(sort $(wildcard src/driver/*.c))
DRIVER := $(if $(DRIVER_SRCS),$(BUILD)/isrf_driver)
$(DRIVER): $(DRIVER_SRCS) $(CORE_TOOL_OBJS) $(wildcard src/driver/*.h)
	$(CORE_CC) $(CORE_CFLAGS) -Isrc/core -Isrc/driver $(DRIVER_SRCS) $(CORE_TOOL_OBJS) $(CORE_LIBS) -o $@

# C unit tests: one binary per test/unit/test_*.c.
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRCS))
# test-only code (hooks into the engine's internals), linked into the tests only
UNIT_SUPPORT_SRCS := $(sort $(wildcard test/unit/support/*.c))
UNIT_SUPPORT_OBJS := $(patsubst test/unit/%.c,$(BUILD)/test/%.o,$(UNIT_SUPPORT_SRCS))
UNIT_HDRS := $(wildcard test/unit/*.h test/unit/support/*.h)
$(BUILD)/test/support/%.o: test/unit/support/%.c $(UNIT_HDRS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) -Isrc/core -Itest/unit -c $< -o $@
$(BUILD)/test/%: test/unit/%.c $(UNIT_HDRS) $(CORE_TOOL_OBJS) $(UNIT_SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	$(CORE_CC) $(CORE_CFLAGS) -Isrc/core -Itest/unit -DISRF_BUILD_DIR='"$(abspath $(BUILD))"' \
		-DISRF_SOURCE_DIR='"$(abspath .)"' $< $(UNIT_SUPPORT_OBJS) $(CORE_TOOL_OBJS) $(CORE_LIBS) -o $@

.PHONY: unit tools
tools: $(DRIVER) $(UNIT_BINS)
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# ---------------------------------------------------------------------------
# Fuzzing harnesses (test/fuzz/fuzz_*.c) with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer: the engine, the test support and each
# harness built by clang under build/fuzz.  bench/fuzz.sh runs them long,
# test/run_tests.sh a few seconds each.
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS ?= -g -O1 -std=gnu11 -fno-omit-frame-pointer -Wall -Wextra -Werror
FUZZ_SRCS := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS := $(patsubst src/core/%.c,$(BUILD)/fuzz/core/%.o,$(CORE_SRCS)) \
	$(BUILD)/fuzz/support.o $(BUILD)/fuzz/synth_corpus.o $(BUILD)/fuzz/model_edit.o
$(BUILD)/fuzz/core/%.o: src/core/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Isrc/core -c $< -o $@
$(BUILD)/fuzz/support.o: test/fuzz/support.c test/fuzz/fuzz.h $(UNIT_HDRS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Isrc/core -Itest/unit -c $< -o $@
$(BUILD)/fuzz/%.o: test/unit/support/%.c $(UNIT_HDRS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Isrc/core -Itest/unit -c $< -o $@
$(BUILD)/fuzz/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -Isrc/core -Itest/unit $< $(FUZZ_OBJS) \
		$(CORE_LIBS) -o $@

.PHONY: fuzz
fuzz: $(FUZZ_BINS)

# ---------------------------------------------------------------------------
# CUDA backend: a separate shared library, never part of OBJS, never linked
# into isrf.so.
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda))
CUDA_SRCS := $(sort $(wildcard cuda/*.cu))
# the toolkit must really be there (CUDA_HOME may be set on hosts without it)
ifneq ($(and $(wildcard $(CUDA_HOME)/bin/nvcc),$(CUDA_SRCS)),)
USE_CUDA ?= 1
else
USE_CUDA ?= 0
endif

CUDA_LIB := $(BUILD)/isrf_cuda.so
ifeq ($(USE_CUDA),1)
NVCC ?= $(CUDA_HOME)/bin/nvcc
NVCC_GENCODE ?= -gencode arch=compute_80,code=sm_80 \
                -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
NVCC_FLAGS ?= -O2 -std=c++17 -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Werror all-warnings $(NVCC_GENCODE)
CUDA_OBJS := $(patsubst cuda/%.cu,$(BUILD)/cuda/%.o,$(CUDA_SRCS))

$(BUILD)/cuda/%.o: cuda/%.cu $(wildcard cuda/*.h) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -Isrc/core -c $< -o $@

# The CUDA runtime is linked statically; cuBLAS and cuSPARSE come from the
# toolkit's lib64 (found through the rpath, or LD_LIBRARY_PATH).
$(CUDA_LIB): $(CUDA_OBJS)
	$(NVCC) -shared $(NVCC_GENCODE) -cudart static $(CUDA_OBJS) \
		-L$(CUDA_HOME)/lib64 -lcublas -lcusparse \
		-Xlinker -rpath,$(CUDA_HOME)/lib64 -o $@

all: $(CUDA_LIB)
install: install-cuda
.PHONY: install-cuda
install-cuda: $(CUDA_LIB)
	$(INSTALL_SHLIB) $(CUDA_LIB) '$(DESTDIR)$(pkglibdir)/isrf_cuda.so'
endif

ifneq ($(DRIVER),)
all: $(DRIVER)
install: install-driver
.PHONY: install-driver
install-driver: $(DRIVER)
	$(INSTALL_PROGRAM) $(DRIVER) '$(DESTDIR)$(bindir)/isrf_driver'
endif

clean: clean-build
.PHONY: clean-build
clean-build:
	rm -rf $(BUILD) results regression.diffs regression.out
