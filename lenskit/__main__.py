"""``python -m lenskit`` runs the command line (``torchrun -m lenskit train --ddp ...`` needs this)."""

import sys

from lenskit.cli import main

if __name__ == "__main__":
    sys.exit(main())
