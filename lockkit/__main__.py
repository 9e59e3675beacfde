"""``python -m lockkit``: the same command line as the ``lockkit`` script."""

import sys

from lockkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
