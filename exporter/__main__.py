"""`python -m exporter ...` behaves like `edgeport export ...`."""

import sys

from .cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
