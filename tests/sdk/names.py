"""Print, as JSON, the public attribute names of the v1 SDK classes, read from the package
given as the first argument (`azureml` or `mlcli.azureml`); for the classes v1 fills per
instance (Environment and its sections), from an instance. Run by test_sdk_signatures.py."""

import importlib
import json
import sys
import warnings

CLASSES = [
    ("core", "Workspace"),
    ("core.model", "Model"),
    ("core.model", "InferenceConfig"),
    ("core.environment", "Environment"),
    ("core.conda_dependencies", "CondaDependencies"),
    ("core.webservice", "Webservice"),
    ("core.webservice", "LocalWebservice"),
    ("core.webservice", "AciWebservice"),
    ("core.webservice", "AksWebservice"),
    ("core.environment", "PythonSection"),
    ("core.environment", "DockerSection"),
]
INSTANCES = {
    "Environment": lambda cls: cls("e"),
    "PythonSection": lambda cls: cls(),
    "DockerSection": lambda cls: cls(),
}

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    package = sys.argv[1]
    names = {}
    for module, name in CLASSES:
        cls = getattr(importlib.import_module(f"{package}.{module}"), name)
        target = INSTANCES[name](cls) if name in INSTANCES else cls
        names[name] = sorted(n for n in dir(target) if not n.startswith("_"))
    json.dump(names, sys.stdout)
