"""The errors a user can fix. The CLI prints them as one paragraph, without a traceback."""


class MlcliError(Exception):
    """Something the user can fix; `where` names the file and field, `fix` says what to do."""

    exit_code = 1

    def __init__(self, problem: str, *, fix: str = "", where: str = "") -> None:
        self.problem, self.fix, self.where = problem, fix, where
        super().__init__(" ".join(p for p in (f"{where}:" if where else "", problem, fix) if p))


class ConfigError(MlcliError):
    """Bad flags, names or config files: exit 2, the code Click uses for usage errors."""

    exit_code = 2


class NotFoundError(MlcliError):
    """No such model, version, service or environment: scripts can tell absent from broken."""

    exit_code = 3


class ConflictError(MlcliError):
    """The request clashes with what exists: a service name taken, a model still in use."""

    exit_code = 4


class EnvironmentBuildError(MlcliError):
    """A model environment could not be built (unknown package, no matching interpreter)."""


class DeployError(MlcliError):
    """A service did not become healthy; the message carries the last lines of its log."""


class DockerUnavailableError(MlcliError):
    """The Docker engine is not reachable, or an image is missing and must not be pulled."""
