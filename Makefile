# Thin wrappers: every target runs a script in scripts/, which also work
# without make (bash scripts/dev.sh, bash scripts/test.sh, ...).

.PHONY: help dev test lint build temporal tools seed

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

dev: ## run the engine locally: Postgres, Temporal dev server + UI, worker, demo data
	bash scripts/dev.sh

test: ## build, lint and run every test tier (what CI runs)
	bash scripts/test.sh

lint: ## go vet, workflowcheck, staticcheck
	bash scripts/lint.sh

build: ## compile everything; .bin/worker and .bin/starter
	bash scripts/build.sh

temporal: ## build the pinned Temporal CLI (dev server + Web UI) into .bin/temporal
	bash scripts/tools.sh temporal

tools: ## build all pinned tools into .bin/ (Temporal CLI, workflowcheck, staticcheck)
	bash scripts/tools.sh all

seed: ## seed the demo tenant into a running dev stack again
	bash scripts/seed-demo.sh
