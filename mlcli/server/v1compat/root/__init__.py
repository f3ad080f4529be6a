"""A sys.path root, not a package to import: holds the `azureml` stand-in tree (see ..)."""
