# Thin wrapper: every target calls the CLI (python -m pipeline ...); the logic lives in pipeline/.
PY      := .venv/bin/python
CLI     := $(PY) -m pipeline
RECIPE  ?= fashion-mnist-mobilenetv2
TARGET  ?= host
ARGS    ?=

.PHONY: setup demo test test-all host bench report readme clean lock lint

setup:                      ## create/refresh .venv from requirements.lock and install Debian packages (idempotent)
	python3 -m pipeline.bootstrap

demo: setup                 ## the default recipe on this machine, end to end, ending with the report's path
	$(CLI) run --recipe $(RECIPE) --target host $(ARGS)

host: setup                 ## any recipe on the host target: make host RECIPE=efficientnet-lite0
	$(CLI) run --recipe $(RECIPE) --target host $(ARGS)

bench: setup                ## re-measure latency and memory (fresh processes, up to 300 s of rounds); results in the run's report.json
	$(CLI) run --recipe $(RECIPE) --target $(TARGET) --from benchmark --target-set benchmark.max_seconds=$(or $(BENCH_SECONDS),300) $(ARGS)

report: setup               ## rebuild a run's report from its manifest, running nothing
	$(CLI) report build/runs/$(RECIPE)__$(TARGET)

readme: setup               ## rewrite the README's measured sections from measured/*.json (ARGS=--check: compare only)
	$(CLI) readme $(ARGS)

test: setup                 ## the test suite without the slow cases
	$(PY) -m pytest -m "not slow" $(ARGS)

test-all: setup             ## every test, the slow ones too
	PIPELINE_FUZZ_EXAMPLES=500 $(PY) -m pytest $(ARGS)

lint: setup
	$(PY) -m ruff check pipeline tests

lock: setup                 ## regenerate requirements.lock from the current .venv
	$(PY) -m pipeline.bootstrap --lock

clean:                      ## remove build outputs (the cache and runs)
	$(CLI) clean

.PHONY: apk android-demo
apk: setup                  ## hand-build the Android demo into a signed, verified APK (no Gradle): build/android/
	$(PY) -m pipeline.android build --out build/android/phone-pipeline-demo.apk $(if $(BUNDLE),--bundle $(BUNDLE))

android-demo: setup         ## copy a release bundle into the app's assets: make android-demo BUNDLE=dir
	$(PY) -m pipeline.android copy-bundle $(BUNDLE)

.PHONY: release verify search
release: setup              ## run (cached) and bundle a target's artifacts: make release TARGET=host; prints the .tar.gz
	$(CLI) release --recipe $(RECIPE) --target $(TARGET) $(ARGS)

search: setup               ## best compression settings measured on a target: make search TARGET=host WORKERS=2
	$(CLI) search --recipe $(RECIPE) --target $(TARGET) --workers $(or $(WORKERS),1) $(ARGS)

verify: setup               ## check a release bundle end to end: make verify BUNDLE=build/release/<name>.tar.gz
	$(CLI) verify $(BUNDLE)

.PHONY: devices-up devices-down adb-loopback emulated-arm64 pixel-8 galaxy-s24
devices-up: setup           ## start both test devices (adbd in chroots; needs root; built once): docs/devices.md
	$(PY) -m pipeline.devices.testbed up

devices-down: setup         ## stop the test devices
	$(PY) -m pipeline.devices.testbed down

adb-loopback emulated-arm64: setup  ## the pipeline on a test device, which is started first (idempotent)
	$(PY) -m pipeline.devices.testbed up $@
	$(CLI) run --recipe $(RECIPE) --target $@ $(if $(SERIAL),--serial $(SERIAL)) $(ARGS)

pixel-8 galaxy-s24: setup   ## the pipeline on a phone over USB adb: make pixel-8 SERIAL=<serial from adb devices>
	$(CLI) run --recipe $(RECIPE) --target $@ $(if $(SERIAL),--serial $(SERIAL)) $(ARGS)

.PHONY: bench-large
bench-large: setup          ## EfficientNet-Lite0 + MobileNetV2 at 224x224, fp32/fp16/int8/pruned in 3 runtimes vs a measured GEMM peak: build/bench-large/report.md (about 20 min)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(CLI) bench-large $(ARGS)

.PHONY: bench-arrays
bench-arrays: setup         ## peak memory and time of checking, splitting and slicing a 2 GB array set (dataset = "arrays"; SIZE_MB=...): build/experiments/bench_arrays.json
	$(PY) -m pipeline.evidence.bench_arrays build/experiments/bench_arrays.json $(or $(SIZE_MB),2048)

.PHONY: evidence-qdq evidence-geffnet evidence-fallback evidence-et-int8 evidence-int8-fidelity evidence-hostile evidence-int8-kernels
evidence-qdq: setup         ## measure whether QAT ranges survive Q/DQ ONNX -> onnx2tf (run `make demo` first)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.qdq_through_onnx2tf build/runs/$(RECIPE)__$(TARGET)

evidence-fallback: setup    ## int8 float fallback on a model built to break int8: accuracy, size, latency (.pte, TFLite)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.outlier_fallback build/experiments/outlier_fallback.json

evidence-et-int8: setup     ## where the int8 .pte of EfficientNet-Lite0 spends its time, fp32 vs int8 per operator (about 12 min)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.executorch_int8_profile build/experiments/executorch_int8_profile.json --tflite

evidence-int8-kernels: setup ## which XNNPACK microkernels LiteRT and ExecuTorch run per conv layer, fp32/int8: callgrind Ir + perf (about 25 min)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.int8_kernels build/evidence/int8_kernels.json

evidence-int8-fidelity: setup ## why PT2E int8 EfficientNet-Lite0 agreed less with fp32: candidates one at a time, per-layer SQNR (about 30 min)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.int8_fidelity build/experiments/int8_fidelity.json --layers

evidence-hostile: setup     ## issue 23's hostile inputs through the real CLI: exit, line, time, peak memory, leftovers: build/evidence/hostile_cases.md (about 4 min; as root it mounts small tmpfs disks for the disk-full cases)
	TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 $(PY) -m pipeline.evidence.hostile_cases build/evidence

evidence-geffnet: setup     ## pass table: geffnet architectures through ONNX/TFLite/.pte parity and pruning (about 15 min)
	$(PY) -m pipeline.evidence.geffnet_table build/experiments/geffnet_table.json
