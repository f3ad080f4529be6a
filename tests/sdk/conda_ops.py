"""Run the same CondaDependencies operations with the package given as the first argument
(`azureml` or `mlcli.azureml`) and print, as JSON, what each leaves: python version, conda
packages, pip packages, pip options, channels. Run by test_sdk_signatures.py."""

import importlib
import json
import sys
import warnings


def state(conda):
    return {
        "python": conda.get_python_version(),
        "conda": list(conda.conda_packages),
        "pip": list(conda.pip_packages),
        "options": list(conda.pip_options),
        "channels": list(conda.conda_channels),
    }


def scenarios(CondaDependencies):
    def default(c):
        return c

    def add_and_replace(c):
        c.add_conda_package("numpy=1.25")
        c.add_conda_package("numpy=1.26")
        c.add_pip_package("keras==2.14.0")
        c.add_pip_package("keras==2.15.0")
        c.add_pip_package("gensim")
        return c

    def remove(c):
        c.add_conda_package("scikit-learn")
        c.add_pip_package("requests")
        c.remove_conda_package("scikit-learn")
        c.remove_pip_package("azureml-defaults")
        return c

    def python_and_channels(c):
        c.set_python_version("3.11")
        c.add_channel("pytorch")
        c.add_channel("pytorch")
        c.remove_channel("anaconda")
        return c

    def pip_options(c):
        c.set_pip_option("--extra-index-url https://example.invalid/simple")
        c.add_pip_package("torch")
        return c

    made = {
        name: function(CondaDependencies())
        for name, function in [
            ("default", default),
            ("add_and_replace", add_and_replace),
            ("remove", remove),
            ("python_and_channels", python_and_channels),
            ("pip_options", pip_options),
        ]
    }
    made["create"] = CondaDependencies.create(
        pip_packages=["keras==2.15.0"], conda_packages=["numpy"], python_version="3.11",
        pin_sdk_version=False,
    )  # fmt: skip
    return {name: state(conda) for name, conda in made.items()}


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    module = importlib.import_module(f"{sys.argv[1]}.core.conda_dependencies")
    json.dump(scenarios(module.CondaDependencies), sys.stdout, indent=1)
