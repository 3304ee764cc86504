#!/usr/bin/env bash
# The README's test command: installs everything it needs on a fresh machine, then runs
# ruff, mypy, the whole test suite (slow and browser tests included) and every notebook.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: headless Chromium for the web-map browser test. No CJK font: the layout map
# uses the Noto Sans SC that `pip install .` brings (pylopdf-fonts-zh-cn), as on a user's fresh
# machine (a system CJK font, where one is installed, is preferred to it).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  # PostgreSQL + PostGIS: the tests of PostGIS layers and --publish run a throw-away cluster
  [ -e /usr/share/postgresql/15/extension/postgis.control ] \
    || need="$need postgresql-15 postgresql-15-postgis-3"
  if [ -n "$need" ]; then
    echo "installing system packages:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi

venv=${SPATIALPLAN_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# a plain (non-editable) install: tests run against what users get, bundled layers included
"$venv/bin/python" -m pip install -q ".[test,dask]"

# a throw-away PostgreSQL + PostGIS cluster (unix socket in a temp folder, a free port; as the
# postgres user when run as root), stopped on exit; the tests read its URL from SPATIALPLAN_TEST_PG
pgdir=$(mktemp -d)
trap '"$venv/bin/python" scripts/pg_cluster.py stop "$pgdir"; rm -rf "$pgdir"' EXIT
SPATIALPLAN_TEST_PG=$("$venv/bin/python" scripts/pg_cluster.py start "$pgdir")
export SPATIALPLAN_TEST_PG

"$venv/bin/ruff" check spatialplan tests benchmarks scripts
# the stage contracts of .importlinter (data flows one way; only the CLI and the face import the
# pipeline); tests/pipeline/test_layering.py adds: no import circle anywhere
"$venv/bin/lint-imports"
# type check of the public API (the files are listed in pyproject.toml [tool.mypy])
"$venv/bin/mypy"
# `pytest` (not `python -m pytest`) so the installed package, not the source folder, is imported
"$venv/bin/pytest" -q -p no:cacheprovider tests --nbmake notebooks "$@"
