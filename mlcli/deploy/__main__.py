"""`python -m mlcli.deploy WORKSPACE NAME REVISION`: the --no-wait helper (background.py)."""

import sys

from mlcli.deploy.background import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
