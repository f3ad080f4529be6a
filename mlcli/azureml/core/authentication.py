"""`azureml.core.authentication`: mlcli has no Azure sign-in, so these credentials are
accepted (a notebook's first cell keeps working) and not used."""

from __future__ import annotations

from typing import Any

from mlcli.azureml._support import warn


class AbstractAuthentication:
    """Accepts v1's arguments; says once that nothing signs in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warn(
            f"{type(self).__name__} is not used: mlcli has no Azure sign-in; the workspace is "
            "a folder on this machine."
        )

    def get_authentication_header(self) -> dict[str, str]:
        return {}


class InteractiveLoginAuthentication(AbstractAuthentication):
    pass


class ServicePrincipalAuthentication(AbstractAuthentication):
    pass


class MsiAuthentication(AbstractAuthentication):
    pass


class AzureCliAuthentication(AbstractAuthentication):
    pass


class TokenAuthentication(AbstractAuthentication):
    pass
