# make setup                                                 .venv, the requirements, a Jupyter kernel, and TeX where apt-get can install it
# make notebooks [EPOCHS=30] [DATA=path] [BATCH_SIZE=64]   execute the four notebooks in place
# make smoke                                                 the same in smoke mode, into a temp folder
# make test                                                  the test suite
# make demo                                                  the notebooks on a generated set into fer-demo/, no dataset needed
PY ?= python
PARAMS := $(if $(EPOCHS),-p epochs $(EPOCHS)) $(if $(DATA),-p data $(DATA)) $(if $(BATCH_SIZE),-p batch_size $(BATCH_SIZE))
# the TeX packages: one list, report.py's TEX_PACKAGES (which `fer report` names where TeX is missing)
TEX := $(shell sed -n 's/^TEX_PACKAGES = "\(.*\)"$$/\1/p' src/facial_expression/report.py)

.PHONY: setup
setup:   ## everything the main job needs; TeX through apt-get as root or with sudo, else the line that installs it
	python3 -m venv .venv
	.venv/bin/python -m pip install -q --upgrade pip
	.venv/bin/python -m pip install -q -r requirements.txt
	.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null  # this venv's kernel, not the user's
	@if command -v latexmk >/dev/null && command -v pdftotext >/dev/null; then echo "TeX: found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX) >/dev/null; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX) >/dev/null; \
	else echo "TeX not installed (the report needs it): sudo apt-get install $(TEX), or build report/ on Overleaf"; fi
	@echo "set up: now run  . .venv/bin/activate"

.PHONY: notebooks smoke test report demo
notebooks:
	$(PY) -m facial_expression notebooks $(PARAMS)
smoke:
	$(PY) -m facial_expression notebooks --smoke $(PARAMS)
test:
	$(PY) -m pytest -q
demo:    ## no dataset needed: the four notebooks in smoke mode on a generated set, into fer-demo/ (numbers mean nothing)
	$(PY) -m facial_expression notebooks --demo

.PHONY: report
report:   ## tables and figures from results/ (or RESULTS=dir), then report/report.pdf (fails on LaTeX problems)
	$(PY) -m facial_expression report $(if $(RESULTS),--results $(RESULTS))

.PHONY: submission
submission:   ## [FROM=fer_results.zip] checks, then dist/<StudentID>_HW04.zip, then a smoke rerun of the zip's notebooks
	$(PY) -m facial_expression submission $(if $(FROM),--from $(FROM)) $(if $(ALLOW_PLACEHOLDER),--allow-placeholder) $(if $(SKIP_RERUN),--skip-rerun)

.PHONY: gpu-check
gpu-check:   ## on a CUDA machine: timed smoke notebooks, 2-epoch LightVGG and VGG16, throughput -> results/benchmarks/<gpu>.json
	$(PY) benchmarks/gpu_check.py
