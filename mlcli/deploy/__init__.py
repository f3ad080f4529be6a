"""Deploy, update and delete services: models + configs + environment -> a target -> a record.

    rollout.py     deploy(), update() and restart(): record the new revision, start it, settle it
    inputs.py      the request, checked: models resolved, entry script and source directory
    launch.py      one revision ready to start: environment, app root, keys, port
    settings.py    deployment config <-> server environment variables <-> the record's spec
    settle.py      wait for health, then promote the revision or undo it; failure reports
    background.py  --no-wait: the helper process that settles the revision (python -m
                   mlcli.deploy runs it)
    journal.py     the service's deploy.log
    operations.py  show, list, logs, keys, run and delete of a deployed service
    purge.py       delete --purge: the images or environment no other service uses

The CLI imports the names below from here; service records and their state live in
mlcli/services.py, the ways of running a server in mlcli/targets/, the app root's layout in
mlcli/app_root.py.
"""

from mlcli.deploy.inputs import DeployRequest
from mlcli.deploy.operations import delete, get_keys, list_services, logs, regen_key, run, show
from mlcli.deploy.rollout import deploy, restart, update
from mlcli.deploy.settings import server_settings

__all__ = [
    "DeployRequest",
    "delete",
    "deploy",
    "get_keys",
    "list_services",
    "logs",
    "regen_key",
    "restart",
    "run",
    "server_settings",
    "show",
    "update",
]
