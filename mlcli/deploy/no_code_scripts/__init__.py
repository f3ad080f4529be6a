"""Entry scripts for no-code deployments (deploy/no_code.py): copied into the app root as
score.py, never imported by mlcli itself."""
