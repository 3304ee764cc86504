"""``python -m spatialplan`` runs the CLI."""

import sys

from spatialplan.cli import main

sys.exit(main())
