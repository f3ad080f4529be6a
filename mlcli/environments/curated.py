"""Azure ML's curated environments, as PyPI specs: a v1 deploy that names one (`-e
AzureML-Minimal`, `"environment": {"name": "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu"}`) gets
an environment with the same framework release and Python, built like any other.

Azure's curated environments were Docker images in Microsoft's registry; what made them
useful to a scoring script is their Python and framework versions, which PyPI has. Names
follow a few families (AzureML-<framework>-<version>[-ubuntuXX.XX-pyNN-cpu|gpu], older
AzureML-<Framework>-<version>-CPU|GPU); GPU builds become their CPU packages here. A name of
no known family is an error listing the families, never a guess.
"""

from __future__ import annotations

import re
from typing import Any

from mlcli.errors import NotFoundError

# Fixed names: (python, pip packages)
FIXED: dict[str, tuple[str, tuple[str, ...]]] = {
    "AzureML-Minimal": ("3.8", ()),
    "AzureML-Tutorial": ("3.8", ("scikit-learn", "pandas", "numpy", "scipy", "matplotlib")),
    "AzureML-Scikit-learn-0.20.3": ("3.6", ("scikit-learn==0.20.3", "numpy", "pandas", "scipy")),
}

# family -> (pip package pinned to the name's version, packages that came with it)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sklearn": ("scikit-learn", ("numpy", "pandas", "scipy", "joblib")),
    "scikit-learn": ("scikit-learn", ("numpy", "pandas", "scipy", "joblib")),
    "tensorflow": ("tensorflow-cpu", ("numpy", "pandas")),
    "pytorch": ("torch", ("numpy", "pandas")),
    "lightgbm": ("lightgbm", ("scikit-learn", "numpy", "pandas")),
    "xgboost": ("xgboost", ("scikit-learn", "numpy", "pandas")),
}
DEFAULT_PYTHON = {"sklearn": "3.8", "scikit-learn": "3.6", "tensorflow": "3.7", "pytorch": "3.7"}

_NAME = re.compile(
    r"^AzureML-(?P<family>[A-Za-z-]+?)-(?P<version>\d+(?:\.\d+)*)"
    r"(?:-ubuntu\d+\.\d+-py(?P<python>\d)(?P<minor>\d+))?"
    r"(?:-(?P<device>cpu|gpu|cuda\d+(?:\.\d+)?-gpu|inference))?$",
    re.IGNORECASE,
)


def is_curated(name: str) -> bool:
    """Azure reserves the AzureML- (and Microsoft) prefixes for curated environments."""
    return name.startswith(("AzureML-", "Microsoft"))


def curated_document(name: str) -> dict[str, Any]:
    """The v1 Environment document a curated name stands for here, with PyPI packages."""
    python, packages = _spec(name)
    return {
        "name": name,
        "version": "1",
        "environmentVariables": {},
        "python": {
            "userManagedDependencies": False,
            "condaDependencies": {
                "name": "project_environment",
                "dependencies": [f"python={python}", "pip", {"pip": list(packages)}],
            },
        },
        "docker": {"baseImage": None},
        "curated": True,
    }


def curated_names() -> list[str]:
    """Examples of the names understood, for listings and errors."""
    return [
        *FIXED,
        "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
        "AzureML-tensorflow-2.4-ubuntu18.04-py37-cpu",
        "AzureML-pytorch-1.10-ubuntu18.04-py38-cpu",
        "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu",
    ]


def _spec(name: str) -> tuple[str, tuple[str, ...]]:
    if name in FIXED:
        return FIXED[name]
    match = _NAME.match(name)
    family = match["family"].lower() if match else ""
    if family not in FAMILIES:
        raise NotFoundError(
            f"{name!r} is not a curated environment mlcli knows. It maps AzureML-Minimal, "
            "AzureML-Tutorial and the families AzureML-sklearn|tensorflow|pytorch|lightgbm|"
            "xgboost-<version>[-ubuntuXX.XX-pyNN-cpu|gpu] (e.g. "
            "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu) to PyPI packages.",
            where="environment name",
            fix="Use one of those names, or give the packages in a conda file (--cf).",
        )
    package, extras = FAMILIES[family]
    python = (
        f"{match['python']}.{match['minor']}"
        if match["python"]
        else DEFAULT_PYTHON.get(family, "3.8")
    )
    return python, (f"{package}=={match['version']}.*", *extras)
