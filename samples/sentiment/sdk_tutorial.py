"""The tutorial's Python path ("deploy an existing model", Azure ML SDK v1) against mlcli.

These are the tutorial's steps in its order, with one change: each import says
`mlcli.azureml.` where the tutorial says `azureml.`. Run it in a folder that holds the
trained `models/` and `score.py` (this one, after `make demo`):

    cd samples/sentiment
    MLCLI_COMPUTE_TYPE=PROCESS ../../.venv/bin/python sdk_tutorial.py    # no Docker
    ../../.venv/bin/python sdk_tutorial.py                               # LOCAL: Docker

MLCLI_COMPUTE_TYPE=PROCESS runs the LocalWebservice as a process instead of a container. The
tutorial deploys as "myservice" without overwrite, like `make demo`: delete that one first
(`ml service delete -n myservice`). The packages are the sample's pins (myenv.yml), so the
service shares the environment `make demo` built.
"""

# ruff: noqa: E402 (the tutorial imports at each step)
import json

from mlcli.azureml.core import Workspace

ws = Workspace.from_config()

from mlcli.azureml.core.model import Model

# The whole folder is one model version (child_paths would pick some of its files).
model = Model.register(
    model_path="./models",
    model_name="sentiment",
    description="Sentiment analysis model trained outside Azure Machine Learning",
    workspace=ws,
)

from mlcli.azureml.core import Environment
from mlcli.azureml.core.conda_dependencies import CondaDependencies

myenv = Environment(name="myenv")
conda_dep = CondaDependencies()
conda_dep.set_python_version("3.11")

# Define the packages needed by the model and scripts (Keras 2 reads the tutorial's files)
conda_dep.add_pip_package("tensorflow-cpu==2.15.1")
conda_dep.add_pip_package("keras==2.15.0")
conda_dep.add_pip_package("numpy==1.26.4")
conda_dep.add_pip_package("scipy==1.13.1")
conda_dep.add_pip_package("h5py==3.16.0")
conda_dep.add_pip_package("gensim==4.3.3")
conda_dep.add_pip_package("scikit-learn==1.9.1")

myenv.python.conda_dependencies = conda_dep

from mlcli.azureml.core.model import InferenceConfig

inference_config = InferenceConfig(entry_script="score.py", environment=myenv)

from mlcli.azureml.core.webservice import LocalWebservice

deployment_config = LocalWebservice.deploy_configuration()

model = Model(ws, name="sentiment")
service = Model.deploy(ws, "myservice", [model], inference_config, deployment_config)
service.wait_for_deployment(True)
print(service.state)
print("scoring URI: " + service.scoring_uri)

# Call the service, as the tutorial's client does.
print(service.run(input_data=json.dumps({"text": "Today is a great day!"})))
