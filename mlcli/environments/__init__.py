"""Model environments: an inference config's conda file -> a shared, cached uv virtualenv.

    spec = spec_for(inference_config)          # what it asks for; spec.key names it
    env = ensure_environment(spec, on_progress=print)   # built once, atomically, locked
    [env.python, "-m", "mlcli.server", ...] with PYTHONPATH=server_runtime_path()

conda.py reads conda files, spec.py turns configs into specs, interpreters.py picks a Python,
build.py builds with uv, cache.py lists and prunes, runtime.py stages the server's code.
"""

from mlcli.environments.build import Environment, ensure_environment, frozen_requirements
from mlcli.environments.cache import (
    find_environment,
    list_environments,
    prune,
    remove_environment,
    services_using,
)
from mlcli.environments.runtime import server_runtime_path
from mlcli.environments.spec import EnvironmentSpec, minimal_spec, spec_for, spec_for_conda_file

__all__ = [
    "Environment",
    "EnvironmentSpec",
    "ensure_environment",
    "find_environment",
    "frozen_requirements",
    "list_environments",
    "minimal_spec",
    "prune",
    "remove_environment",
    "server_runtime_path",
    "services_using",
    "spec_for",
    "spec_for_conda_file",
]
