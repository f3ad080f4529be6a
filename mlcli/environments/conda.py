"""Read a conda environment file (or an inline condaDependencies dict) as pip requirements.

Azure ML v1 builds model images with conda; mlcli builds uv virtual environments from PyPI.
Each conda match spec becomes the pip requirement with the same constraint:

    numpy               -> numpy
    numpy=1.26          -> numpy==1.26.*    (conda's single '=' is a prefix match)
    numpy==1.26.4       -> numpy==1.26.4
    numpy=1.26.4=py311_0 -> numpy==1.26.4   (a build string makes the version exact; dropped)
    numpy 1.26          -> numpy==1.26      (conda's space form: a bare version is exact)
    scikit-learn>=1.3,<2 -> scikit-learn>=1.3,<2
    conda-forge::numpy  -> numpy            (channels do not exist on PyPI)

A few packages have another name on PyPI (`CONDA_TO_PYPI`); conda's own infrastructure
(compilers' runtimes, C libraries, python, pip itself) is skipped; the `pip:` sub-list is taken
as given. `azureml-*` runtime packages are dropped later, for conda and pip entries alike,
because mlcli's scoring server and compatibility modules stand in for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError

# conda name -> PyPI name, where they differ.
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "py-catboost": "catboost",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "tensorflow-mkl": "tensorflow",
    "tensorflow-eigen": "tensorflow",
    "tensorflow-base": "tensorflow",
    "tensorflow-gpu": "tensorflow",
    "numpy-base": "numpy",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "ruamel_yaml": "ruamel.yaml",
    "sklearn": "scikit-learn",  # PyPI's `sklearn` is a deprecated stub that refuses to install
    "pyqt": "PyQt5",
    "py-spy": "py-spy",
    "onnxruntime-cpu": "onnxruntime",
}

# Conda packages that are conda's own plumbing, not Python packages: the interpreter, the
# installer, and C/C++/Fortran runtimes and libraries that PyPI wheels bundle themselves.
CONDA_INFRASTRUCTURE: frozenset[str] = frozenset(
    {
        "python", "pip", "setuptools", "wheel", "conda", "mamba", "ca-certificates", "openssl",
        "certifi", "zlib", "xz", "bzip2", "lz4-c", "zstd", "ncurses", "readline", "sqlite", "tk",
        "tzdata", "expat", "icu", "krb5", "c-ares", "yaml", "blas", "mkl", "mkl-service",
        "mkl_fft", "mkl_random", "mkl-include", "intel-openmp", "openblas", "nomkl", "llvm-openmp",
        "tbb", "cudatoolkit", "cudnn", "nccl", "cuda-toolkit", "pytorch-cuda", "pytorch-mutex",
        "cpuonly", "vc", "vs2015_runtime", "ucrt", "gcc", "gxx", "gfortran", "make", "cmake",
        "ld_impl_linux-64", "tbb-devel", "git", "curl", "pcre", "gmp", "mpfr", "mpc", "jpeg",
        "freetype", "fontconfig", "pixman", "cairo", "glib", "gettext", "hdf5", "zeromq",
    }
)  # fmt: skip
_INFRASTRUCTURE_PREFIXES = ("_", "lib", "cuda-", "vs20", "m2w64-", "msys2-")
# "lib*" names that are real Python packages on PyPI and in conda alike.
_PYTHON_LIBS = frozenset({"librosa", "libpysal", "libcst", "libclang", "librabbitmq"})

_CHANNEL = re.compile(r"^[^:\s]+::")
_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)(.*)$", re.DOTALL)
_SPLIT_VERSION_BUILD = re.compile(r"^(?P<version>[^\s=]*)(?:[\s=]+(?P<build>\S+))?$")


@dataclass(frozen=True, slots=True)
class CondaRequirements:
    """What a conda environment asks for, in pip terms."""

    python: str | None  # "3.8", "3.8.5", ">=3.9": the conda constraint on python, if any
    requirements: tuple[str, ...]  # pip requirement lines, conda entries first, then `pip:`
    origins: dict[str, str] = field(default_factory=dict)  # pip name -> the conda entry text
    skipped: tuple[str, ...] = ()  # conda infrastructure entries left out
    name: str | None = None


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name: lower case, runs of -_. become one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_conda_file(path: Path) -> CondaRequirements:
    """Parse a conda environment YAML file; ConfigError naming the file when it is not one."""
    import yaml

    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "the conda file does not exist.",
            where=where,
            fix="Point condaFile (or --cf) at a conda environment YAML file.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the conda file cannot be read ({exc}).", where=where) from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the conda file is not valid YAML: {exc}".rstrip(),
            where=where,
            fix="Fix the YAML syntax (a conda file has name, channels and dependencies).",
        ) from exc
    return conda_requirements(document, where=where, base=path.parent)


def conda_requirements(document: Any, *, where: str, base: Path | None = None) -> CondaRequirements:
    """Turn a parsed conda environment ({name, channels, dependencies}) into pip terms."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            "a conda environment must be a mapping with 'dependencies'.",
            where=where,
            fix="Write it as: name: ..., channels: [...], dependencies: [python=3.11, ...].",
        )
    dependencies = document.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise ConfigError(
            "'dependencies' must be a list.",
            where=f"{where}, field dependencies",
            fix="List one conda package per item, and pip packages under a '- pip:' item.",
        )
    python: str | None = None
    requirements: list[str] = []
    pip_lines: list[str] = []
    origins: dict[str, str] = {}
    skipped: list[str] = []
    for item in dependencies:
        if isinstance(item, dict):
            pip_lines.extend(_pip_section(item, where=where, base=base))
            continue
        if not isinstance(item, str | int | float):
            raise ConfigError(
                f"dependency {item!r} is neither a package spec nor a 'pip:' list.",
                where=f"{where}, field dependencies",
            )
        text = str(item).strip()
        if not text:
            continue
        name, constraint = parse_match_spec(text, where=where)
        conda_name = name.lower()
        if conda_name == "python":
            python = constraint.lstrip("=") if constraint.startswith("==") else constraint
            python = python.removesuffix(".*") or None
            continue
        if is_conda_infrastructure(conda_name):
            skipped.append(text)
            continue
        pypi_name = CONDA_TO_PYPI.get(conda_name, name)
        requirement = f"{canonical_name(pypi_name)}{constraint}"
        origins[canonical_name(pypi_name)] = text
        requirements.append(requirement)
    return CondaRequirements(
        python=python,
        requirements=tuple(requirements + pip_lines),
        origins=origins,
        skipped=tuple(skipped),
        name=document.get("name"),
    )


def is_conda_infrastructure(conda_name: str) -> bool:
    if conda_name in CONDA_INFRASTRUCTURE:
        return True
    return conda_name.startswith(_INFRASTRUCTURE_PREFIXES) and conda_name not in _PYTHON_LIBS


def parse_match_spec(text: str, *, where: str) -> tuple[str, str]:
    """A conda match spec as (name, pip version constraint), e.g. ("numpy", "==1.26.*")."""
    spec = _CHANNEL.sub("", text.strip())
    if "[" in spec:
        raise ConfigError(
            f"conda dependency {text!r} uses the bracket form, which mlcli does not translate.",
            where=f"{where}, field dependencies",
            fix="Write it as name=version (for example numpy=1.26) or move it to the pip: list.",
        )
    match = _NAME.match(spec)
    if not match:
        raise ConfigError(
            f"conda dependency {text!r} is not a package spec.",
            where=f"{where}, field dependencies",
            fix="Write name, name=version or name>=version.",
        )
    name, rest = match.group(1), match.group(2).strip()
    if not rest:
        return name, ""
    if "|" in rest:
        raise ConfigError(
            f"conda dependency {text!r} uses '|' (either-or), which pip cannot express.",
            where=f"{where}, field dependencies",
            fix="Keep one version range, for example numpy>=1.24,<2.",
        )
    return name, _pip_constraint(rest, text=text, where=where)


def _pip_constraint(rest: str, *, text: str, where: str) -> str:
    if rest[0] in "<>!~" or rest.startswith("=="):
        # An operator form: "==1.2", ">=1.3,<2", ">=1.3 py_0" (the build string is dropped).
        version = re.sub(r"\s*,\s*", ",", rest).split()[0]
        return ",".join(_operator_clause(clause) for clause in version.split(","))
    fuzzy = rest.startswith("=")
    body = rest[1:] if fuzzy else rest
    parts = _SPLIT_VERSION_BUILD.match(body.strip())
    if not parts:
        raise ConfigError(
            f"conda dependency {text!r} has a version this parser does not understand.",
            where=f"{where}, field dependencies",
            fix="Write name=version, name==version or name>=version.",
        )
    version, build = parts.group("version"), parts.group("build")
    if "," in version or version.startswith(("<", ">", "!", "~")):
        return ",".join(_operator_clause(clause) for clause in version.split(","))
    version = version.lstrip("=")
    if version in ("", "*"):
        return ""
    if version.endswith("*"):
        return f"=={version.rstrip('.*')}.*"
    # conda: `name=1.2` is the prefix 1.2*; with a build string, or in the space form, exact.
    if fuzzy and build is None:
        return f"=={version}.*"
    return f"=={version}"


def _operator_clause(clause: str) -> str:
    clause = clause.strip()
    operator = re.match(r"^(==|>=|<=|!=|~=|>|<|=)?", clause).group(1) or "=="
    version = clause[len(operator) :] if clause.startswith(operator) else clause
    if operator == "=":
        operator, version = "==", f"{version.rstrip('.*')}.*"
    elif version.endswith("*") and operator in ("==", "!="):
        version = f"{version.rstrip('.*')}.*"
    elif version.endswith("*"):
        version = version.rstrip(".*")  # ">=1.2.*" means ">=1.2" to conda; pip refuses the star
    return f"{operator}{version}"


def _pip_section(item: dict[str, Any], *, where: str, base: Path | None) -> list[str]:
    if set(item) != {"pip"} or not isinstance(item["pip"], list | type(None)):
        raise ConfigError(
            f"dependency {item!r} is not a 'pip:' list.",
            where=f"{where}, field dependencies",
            fix="Write pip packages as '- pip:' followed by a list of requirement strings.",
        )
    lines = []
    for entry in item["pip"] or []:
        line = str(entry).split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(resolve_local_paths(line, base) if base else line)
    return lines


_PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-f")
_PATH_OPTIONS_EQ = ("--requirement=", "--constraint=", "--editable=", "--find-links=")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tgz")


def resolve_local_paths(line: str, base: Path) -> str:
    """Make a pip line's relative file paths absolute against the conda file's folder, as pip
    reads them there (`-r other.txt`, `./wheels/pkg-1.0-py3-none-any.whl`)."""
    for option in _PATH_OPTIONS_EQ:
        if line.startswith(option):
            return f"{option}{_absolute(line[len(option) :].strip(), base)}"
    head, _, rest = line.partition(" ")
    if head in (*_PATH_OPTIONS, "--find-links") and rest.strip():
        return f"{head} {_absolute(rest.strip(), base)}"
    if line.startswith(("./", "../")) or (
        line.endswith(_ARCHIVES) and "://" not in line and (base / line).exists()
    ):
        return _absolute(line, base)
    return line


def _absolute(value: str, base: Path) -> str:
    if "://" in value or value.startswith(("/", "~")):
        return value
    return str((base / value).resolve())
