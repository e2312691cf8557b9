# make notebooks [EPOCHS=30] [DATA=path] [BATCH_SIZE=64]   execute the four notebooks in place
# make smoke                                                 the same in smoke mode, into a temp folder
# make test                                                  the test suite
PY ?= python
PARAMS := $(if $(EPOCHS),-p epochs $(EPOCHS)) $(if $(DATA),-p data $(DATA)) $(if $(BATCH_SIZE),-p batch_size $(BATCH_SIZE))

.PHONY: notebooks smoke test report
notebooks:
	$(PY) -m facial_expression notebooks $(PARAMS)
smoke:
	$(PY) -m facial_expression notebooks --smoke $(PARAMS)
test:
	$(PY) -m pytest -q

.PHONY: report
report:   ## tables and figures from results/, then report/report.pdf (fails on LaTeX problems)
	$(PY) -m facial_expression report

.PHONY: submission
submission:   ## checks, then dist/<StudentID>_HW04.zip, then a smoke rerun of the zip's notebooks
	$(PY) -m facial_expression submission $(if $(ALLOW_PLACEHOLDER),--allow-placeholder) $(if $(SKIP_RERUN),--skip-rerun)

.PHONY: gpu-check
gpu-check:   ## on a CUDA machine: timed smoke notebooks, 2-epoch LightVGG and VGG16, throughput -> results/benchmarks/<gpu>.json
	$(PY) benchmarks/gpu_check.py
