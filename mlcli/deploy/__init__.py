"""Deploy, update and delete services: models + configs + environment -> a target -> a record.

    rollout.py     deploy(), update() and restart(): record the new revision, start it, settle it
    inputs.py      DeployRequest, UpdateRequest, checked: models resolved, entry script, source
                   directory, the tag rule applied
    overrides.py   flags / SDK arguments on top of the configs, and the notes on what this
                   machine does not honour
    launch.py      one revision ready to start: environment, app root, keys, port
    settings.py    deployment config <-> server environment variables <-> the record's spec
    settle.py      wait for health, then promote the revision or undo it; failure reports
    background.py  --no-wait: the helper process that settles the revision (python -m
                   mlcli.deploy runs it)
    journal.py     the service's deploy.log
    operations.py  show, list, logs, keys, run and delete of a deployed service
    purge.py       delete --purge: the images or environment no other service uses
    packaging.py   `ml model package`: an image or build context, and Kubernetes manifests

The faces (mlcli/cli, mlcli/azureml) import the names below from here (see mlcli/api.py);
service records and their state live in mlcli/services.py, the ways of running a server in
mlcli/targets/, the app root's layout in mlcli/app_root.py.
"""

from mlcli.deploy.inputs import DeployRequest, UpdateRequest
from mlcli.deploy.operations import delete, get_keys, list_services, logs, regen_key, run, show
from mlcli.deploy.rollout import deploy, restart, update
from mlcli.deploy.settings import server_settings

__all__ = [
    "DeployRequest",
    "UpdateRequest",
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
