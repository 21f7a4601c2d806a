# Thin wrapper: every target calls the CLI (python -m pipeline ...); the logic lives in pipeline/.
PY      := .venv/bin/python
CLI     := $(PY) -m pipeline
RECIPE  ?= fashion-mnist-mobilenetv2
TARGET  ?= host
ARGS    ?=

.PHONY: setup demo test test-all host bench report clean lock lint

setup:                      ## create/refresh .venv from requirements.lock and install Debian packages (idempotent)
	python3 -m pipeline.bootstrap

demo: setup                 ## the default recipe on this machine, end to end, ending with the report's path
	$(CLI) run --recipe $(RECIPE) --target host $(ARGS)

host: setup                 ## any recipe on the host target: make host RECIPE=efficientnet-lite0
	$(CLI) run --recipe $(RECIPE) --target host $(ARGS)

bench: setup                ## re-measure latency and memory (fresh processes); results in the run's report.json
	$(CLI) run --recipe $(RECIPE) --target $(TARGET) --from benchmark $(ARGS)

report: setup               ## rebuild a run's report from its manifest, running nothing
	$(CLI) report build/runs/$(RECIPE)__$(TARGET)

test: setup                 ## the test suite without the slow cases
	$(PY) -m pytest -m "not slow" $(ARGS)

test-all: setup             ## every test, the slow ones too
	$(PY) -m pytest $(ARGS)

lint: setup
	$(PY) -m ruff check pipeline tests

lock: setup                 ## regenerate requirements.lock from the current .venv
	$(PY) -m pipeline.bootstrap --lock

clean:                      ## remove build outputs (the cache and runs)
	$(CLI) clean

.PHONY: apk android-demo
apk: setup                  ## hand-build the Android demo into a signed, verified APK (no Gradle): build/android/
	$(PY) -m pipeline.apk build --out build/android/phone-pipeline-demo.apk $(if $(BUNDLE),--bundle $(BUNDLE))

android-demo: setup         ## copy a release bundle into the app's assets: make android-demo BUNDLE=dir
	$(PY) -m pipeline.apk copy-bundle $(BUNDLE)
