"""``python -m metacrl``: the same as the ``metacrl`` command."""

import sys

from metacrl.cli import main

sys.exit(main())
