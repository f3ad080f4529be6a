"""Print, as JSON, the signature of each v1 SDK callable named on the command line, read from
the package given as the first argument (`azureml` for the real SDK, `mlcli.azureml` for
ours). Run by tests/test_sdk_signatures.py with both interpreters; no mlcli imports here, so
the real SDK's venv runs it as is."""

import importlib
import inspect
import json
import sys
import warnings


def describe(package: str, entry: str) -> list[list] | str:
    module_name, _, attribute = entry.partition(":")
    try:
        target = importlib.import_module(f"{package}.{module_name}")
        for part in attribute.split("."):
            target = getattr(target, part)
        parameters = inspect.signature(target).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        return f"missing: {type(exc).__name__}: {exc}"
    return [
        [
            p.name,
            p.kind.name,
            None if p.default is inspect.Parameter.empty else repr(p.default),
        ]
        for p in parameters
    ]


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    package, entries = sys.argv[1], sys.argv[2:]
    json.dump({entry: describe(package, entry) for entry in entries}, sys.stdout, indent=1)
