"""``python -m spatialplan.demo OUT_DIR``: write a fresh copy of the synthetic demo data."""

import sys

from spatialplan.demo.synthetic import _main

sys.exit(_main(sys.argv[1:]))
