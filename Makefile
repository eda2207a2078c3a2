# Shortcuts for the two set-up-and-go scripts (the scripts work without make).
#   make run [FILES="scan.dcm volume/"]   the window (bundled samples when FILES is empty)
#   make test [PYTEST_ARGS="-k cli"]      the whole test suite
# Settings pass through: make run OCTVIEWER_TORCH="torch==X torchvision==Y" TORCH_INDEX_URL=...
FILES ?=
PYTEST_ARGS ?=

.PHONY: run test setup package
run:
	scripts/run $(FILES)

test:
	scripts/test $(PYTEST_ARGS)

setup:
	scripts/setup_env.sh test

package: setup
	scripts/build_app.sh
