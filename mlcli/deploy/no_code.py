"""No-code deployment (Azure ML v1 preview): a model registered with a known framework
deploys without an entry script or inference config. mlcli supplies both: a scoring script
for the framework (no_code_scripts/) and an environment with its runtime, pinned to the
registered frameworkVersion when there is one (a pickle loads only in the version that made
it). Input is v1's `{"data": [[...], ...]}`, output the predictions as a JSON list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlcli.errors import ConfigError

if TYPE_CHECKING:
    from mlcli.environments import EnvironmentSpec
    from mlcli.registry import ModelVersion
    from mlcli.revision import RevisionSpec

SCRIPTS = Path(__file__).parent / "no_code_scripts"


# v1's Model.Framework value (matched without case) -> script, pip package, extra packages
FRAMEWORKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "scikitlearn": ("score_sklearn.py", "scikit-learn", ("joblib", "numpy")),
    "onnx": ("score_onnx.py", "onnxruntime", ("numpy",)),
    "tensorflow": ("score_tensorflow.py", "tensorflow-cpu", ("numpy",)),
}
NAMES = "ScikitLearn, Onnx or TensorFlow"
SOURCE_PREFIX = "no-code deployment of "


def framework_of(models: Sequence[ModelVersion]) -> str | None:
    """The no-code framework of a deploy, or None (no model, several, or not a no-code one)."""
    if len(models) != 1:
        return None
    framework = (models[0].framework or "").lower()
    return framework if framework in FRAMEWORKS else None


def is_no_code(spec: RevisionSpec) -> bool:
    """Whether a service revision came from a no-code deployment (its generated environment)."""
    return spec.environment.spec_source.startswith(SOURCE_PREFIX)


def no_code_app(model: ModelVersion) -> tuple[Path, EnvironmentSpec]:
    """The generated entry script and environment for one model of a no-code framework."""
    from mlcli.environments.conda import CondaRequirements
    from mlcli.environments.spec import spec_from_conda

    framework = (model.framework or "").lower()
    script, package, extras = FRAMEWORKS[framework]
    version = model.framework_version
    if version and framework == "tensorflow" and version.startswith("1."):
        raise ConfigError(
            f"model {model.id} is TensorFlow {version}; no-code deployment here needs a "
            "TensorFlow 2 SavedModel.",
            where="--model-framework-version",
            fix="Deploy it with a score.py (--es) and a conda file pinning TensorFlow 1.",
        )
    pinned = f"{package}=={version}" if version and _is_version(version) else package
    requirements = CondaRequirements(python=None, requirements=(pinned, *extras))
    environment = spec_from_conda(
        requirements, source=f"{SOURCE_PREFIX}{model.framework} ({model.id})"
    )
    return SCRIPTS / script, environment


def _is_version(text: str) -> bool:
    return all(part.isdigit() for part in text.split(".")) and text.count(".") <= 3
