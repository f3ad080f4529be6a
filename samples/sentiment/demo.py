"""`make demo`: the sentiment sample end to end (train, register, deploy on PROCESS, score).

Runs the commands of Azure ML v1's "deploy an existing model" tutorial against mlcli:

    ml env build --ic samples/sentiment/inferenceConfig.json      # the model's environment
    python samples/sentiment/train.py                              # only when models/ is absent
    ml model register -p samples/sentiment/models -n sentiment
    ml model deploy -n myservice -m sentiment:1 --ic ... --dc ... --overwrite
    python samples/sentiment/client.py <scoringUri> "Today is a great day!"

and leaves the service running. A second run reuses the environment, the trained files and the
registered version (when its files are unchanged), and redeploys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL_FILES = ("model.h5", "model.w2v", "tokenizer.pkl", "encoder.pkl")
TEXTS = {
    "POSITIVE": "Today is a great day!",
    "NEGATIVE": "This is a terrible day, everything went wrong.",
}

console = Console(highlight=False, soft_wrap=True)


class DemoFailed(Exception):
    """A step failed; its own output has already said why."""


def shown(path: Path) -> str:
    """A path as the tutorial writes it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def ml(*args: str) -> Any:
    """Run `ml ARGS` (stderr, with its progress, goes to the terminal) and return its JSON."""
    console.print(f"[bold]$ ml {escape(shlex.join(args))}[/]")
    done = subprocess.run(
        [sys.executable, "-m", "mlcli", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise DemoFailed(f"`ml {args[0]} {args[1]}` exited with {done.returncode} (see above)")
    return json.loads(done.stdout) if done.stdout.strip() else None


def build_environment(inference_config: Path) -> Path:
    """The model's environment, built by mlcli from myenv.yml: the one that trains and serves."""
    built = ml("env", "build", "--ic", shown(inference_config))
    console.print(f"  environment {built['key']}: {built['python']}")
    return Path(built["python"])


def train(python: Path, models: Path) -> None:
    """Run train.py in the model environment, with a spinner; its log is shown on failure."""
    command = [str(python), str(HERE / "train.py"), "--out", str(models)]
    shell = f"$ python {shown(HERE / 'train.py')} --out {shown(models)}"
    console.print(f"[bold]{escape(shell)}[/]")
    what = "training word2vec + Keras LSTM on a generated corpus"
    with tempfile.TemporaryFile("w+") as log:
        if console.is_terminal:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=True) as progress:
                progress.add_task(what, total=None)
                done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        else:  # a log file or CI: one line, no animation
            console.print(f"  {what}")
            done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.seek(0)
        lines = log.read().splitlines()
    if done.returncode != 0:
        console.print("\n".join(lines[-30:]), markup=False)
        raise DemoFailed(f"train.py exited with {done.returncode}")
    console.print(f"  {lines[-1] if lines else 'trained'}", markup=False)


@contextmanager
def step(title: str) -> Iterator[None]:
    console.rule(title)
    started = time.perf_counter()
    yield
    console.print(f"  [dim]{time.perf_counter() - started:.1f} s[/]")


def file_digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def register(models: Path, name: str) -> str:
    """Register models/ as `name`, or reuse the latest version when it holds the same files."""
    latest = subprocess.run(
        [sys.executable, "-m", "mlcli", "model", "show", "-n", name],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if latest.returncode == 0:
        record = json.loads(latest.stdout)
        registered = {f["path"]: f["sha256"] for f in record.get("files", [])}
        if record.get("modelPath") == models.name and registered == file_digests(models):
            console.print(f"  {record['id']} is registered with these files already: reusing it")
            return record["id"]
    record = ml("model", "register", "-p", shown(models), "-n", name)
    console.print(f"  registered {record['id']} ({len(record.get('files', []))} files)")
    return record["id"]


def deploy(service: str, model_id: str, inference_config: Path, deployment_config: Path) -> dict:
    port_flags = []
    wanted = json.loads(deployment_config.read_text()).get("port")
    if wanted and not port_is_ours(wanted, service):
        free = free_port()
        console.print(
            f"  port {wanted} (deploymentConfig.json) is taken by another program: "
            f"deploying on port {free} instead"
        )
        port_flags = ["--port", str(free)]
    record = ml(
        "model", "deploy", "-n", service, "-m", model_id,
        "--ic", shown(inference_config), "--dc", shown(deployment_config), *port_flags,
        "--overwrite",
    )  # fmt: skip
    console.print(f"  {service}: {record.get('state')} at {record['scoringUri']}")
    return record


def port_is_ours(port: int, service: str) -> bool:
    """Free, or held by this demo's own service (the --overwrite deploy takes it over)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            pass
    shown_service = subprocess.run(
        [sys.executable, "-m", "mlcli", "service", "show", "-n", service, "--only-show-errors"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if shown_service.returncode != 0:
        return False
    return f"127.0.0.1:{port}/" in json.loads(shown_service.stdout).get("scoringUri", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def score(scoring_uri: str, key: str | None) -> None:
    """Score one positive and one negative sentence, as the tutorial's client does."""
    sys.path.insert(0, str(HERE))
    from client import score as post

    wrong = []
    for expected, text in TEXTS.items():
        reply = post(scoring_uri, text, key=key)
        console.print(f"[bold]POST[/] {json.dumps({'text': text})}")
        console.print(f"  status {reply.status}, {reply.elapsed * 1000:.0f} ms", markup=False)
        console.print(f"  {json.dumps(reply.body)}", markup=False)
        label = reply.body.get("label") if isinstance(reply.body, dict) else None
        if reply.status != 200 or label != expected:
            wrong.append(f"{text!r} gave {label or reply.status}, expected {expected}")
    if wrong:
        raise DemoFailed("; ".join(wrong))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", default="myservice", help="service name (myservice)")
    parser.add_argument("--model-name", default="sentiment", help="model name (sentiment)")
    parser.add_argument("--models", type=Path, default=HERE / "models", help="trained files")
    parser.add_argument("--ic", type=Path, default=HERE / "inferenceConfig.json")
    parser.add_argument("--dc", type=Path, default=HERE / "deploymentConfig.json")
    args = parser.parse_args()
    models, ic, dc = args.models.resolve(), args.ic.resolve(), args.dc.resolve()
    started = time.perf_counter()
    try:
        with step("1. the model's environment (uv, from myenv.yml)"):
            python = build_environment(ic)
        with step("2. the model: models/model.h5, model.w2v, tokenizer.pkl, encoder.pkl"):
            if all((models / name).is_file() for name in MODEL_FILES):
                console.print(f"  {shown(models)}/ is trained already: reusing it")
            else:
                train(python, models)
        with step("3. register"):
            model_id = register(models, args.model_name)
        with step("4. deploy"):
            record = deploy(args.service, model_id, ic, dc)
            key = None
            if record.get("authEnabled"):
                key = ml("service", "get-keys", "-n", args.service)["primaryKey"]
        with step("5. score"):
            score(record["scoringUri"], key)
    except DemoFailed as failed:
        console.print(f"[red]make demo failed:[/] {escape(str(failed))}")
        return 1
    except KeyboardInterrupt:
        console.print("[red]make demo interrupted[/] (rerun it: finished steps are reused)")
        return 130
    uri = record["scoringUri"]
    ml_bin = shown(Path(sys.executable).with_name("ml"))
    python_bin = shown(Path(sys.executable))
    body = json.dumps({"text": "I love this movie."})
    auth = f" -H 'Authorization: Bearer {key}'" if key else ""
    console.rule(f"done in {time.perf_counter() - started:.0f} s")
    console.print(f"{args.service} is running ({model_id}) at {uri}", markup=False)
    console.print(
        f"  score:   {python_bin} {shown(HERE / 'client.py')} {uri} 'I love this movie.'"
        + (f" --key {key}" if key else ""),
        markup=False,
    )
    console.print(
        f"  curl:    curl -s {uri} -H 'Content-Type: application/json'{auth} -d '{body}'",
        markup=False,
    )
    console.print(f"  or:      {ml_bin} service run -n {args.service} -d '{body}'", markup=False)
    console.print(f"  logs:    {ml_bin} service get-logs -n {args.service}", markup=False)
    console.print(f"  delete:  {ml_bin} service delete -n {args.service}", markup=False)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
