"""Make Environments the v1 ways (from a pip requirements file, a conda file, a Docker image)
with the package given as the first argument (`azureml` or `mlcli.azureml`) in the folder
given as the second, and print, as JSON, the parts of their v1 JSON that mlcli reads. Run by
test_sdk_signatures.py."""

import importlib
import json
import os
import sys
import warnings
from pathlib import Path

REQUIREMENTS = "requests==2.32.3\n# pinned for the tests\nnumpy\n"
CONDA = "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n  - numpy\n"
CONDA += "  - pip:\n    - keras==2.15.0\n"


def described(package, env):
    serialize = type(env)._serialize_to_dict if package == "azureml" else type(env)._serialize
    document = serialize(env)
    python = document["python"]
    return {
        "name": document["name"],
        "environmentVariables": document["environmentVariables"],
        "python": {
            key: python.get(key)
            for key in ("userManagedDependencies", "interpreterPath", "condaDependencies")
        },
        # Azure's default base image changes with each build of the SDK; mlcli treats every
        # image of Azure's own as "the usual base".
        "baseImage": "Azure's default"
        if (document["docker"]["baseImage"] or "").startswith("mcr.microsoft.com/azureml/openmpi")
        else document["docker"]["baseImage"],
    }


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    package, folder = sys.argv[1], Path(sys.argv[2])
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    (folder / "env.yml").write_text(CONDA)
    os.chdir(folder)
    Environment = importlib.import_module(f"{package}.core.environment").Environment
    made = {
        "plain": Environment("plain"),
        "pip": Environment.from_pip_requirements("p", "requirements.txt"),
        "pip_version": Environment.from_pip_requirements("v", "requirements.txt", "23.1"),
        "conda": Environment.from_conda_specification("c", "env.yml"),
        "docker": Environment.from_docker_image("d", "myimage:1"),
        "docker_conda": Environment.from_docker_image("dc", "img:2", conda_specification="env.yml"),
    }
    json.dump({k: described(package, v) for k, v in made.items()}, sys.stdout, indent=1)
