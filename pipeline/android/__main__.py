"""`python -m pipeline.android build|copy-bundle ...`: see cli."""

import sys

from pipeline.android.cli import main

sys.exit(main(sys.argv[1:]))
