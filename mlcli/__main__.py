"""`python -m mlcli` is the same as the `ml` console script."""

from mlcli.cli import main

main()
