"""`python -m mlcli.azureml SCRIPT [ARGS]`: run a v1 SDK script unchanged, its `azureml.*`
imports resolved to mlcli.azureml (see alias.py), unless the real SDK is installed."""

import runpy
import sys

from mlcli.azureml.alias import install


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__.strip() + "\n")
        return 2
    if not install():
        sys.stderr.write("mlcli: the real azureml-core is installed; the script imports it.\n")
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
