# Offline DVC plots (include from the top-level Makefile: `include infra/dvc-plots/plots.mk`).
# `make plots` writes reports/plots/index.html with vega inlined: it renders without a network.
DVC_PLOTS_TEMPLATE := infra/dvc-plots/vendor/offline.html

$(DVC_PLOTS_TEMPLATE): infra/dvc-plots/template.in.html infra/dvc-plots/build.py
	python3 infra/dvc-plots/build.py

.PHONY: plots-template plots
plots-template: $(DVC_PLOTS_TEMPLATE)

plots: $(DVC_PLOTS_TEMPLATE)
	dvc plots show --html-template $(DVC_PLOTS_TEMPLATE) -o reports/plots
