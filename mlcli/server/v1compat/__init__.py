"""The Azure ML v1 names an entry script imports, without the Azure SDK.

`root/` is a sys.path entry holding the `azureml` (and `azureml_inference_server_http`) package
tree. It goes at the END of sys.path, so a real azureml-core installed in the model's
environment still wins for `azureml.core`; the request/response modules are forced in through
sys.modules the way azmlinfsrv does, because the server must recognise the objects they make.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent / "root")

_ALIASES = ("azureml.contrib.services", "azureml_inference_server_http.api")


def install() -> None:
    """Make `azureml.core.model`, `azureml.contrib.services.aml_request` & co. importable."""
    if ROOT not in sys.path:
        sys.path.append(ROOT)
    from mlcli.server.v1compat import aml_request, aml_response

    for package in _ALIASES:
        sys.modules[f"{package}.aml_request"] = aml_request
        sys.modules[f"{package}.aml_response"] = aml_response
        # `import azureml.contrib.services.aml_request as m` also looks the names up as
        # attributes of the parent packages.
        try:
            parent = importlib.import_module(package)
        except ImportError:
            continue
        parent.aml_request = aml_request
        parent.aml_response = aml_response
