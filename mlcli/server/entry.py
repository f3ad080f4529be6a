"""Load a v1 entry script the way azmlinfsrv does and decide how its run() takes input."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PLAIN = "plain"  # run(data: str): the body (or the query as JSON) as a string
SCHEMA = "schema"  # run(**params) decorated with inference-schema's @input_schema
RAW = "raw"  # run(request) decorated with @rawhttp: the whole HTTP request


class ScriptError(Exception):
    """The entry script cannot be served; the message says why (and the log has any traceback)."""


@dataclass(frozen=True)
class EntryScript:
    path: str
    module: ModuleType
    init: Callable[[], object]
    run: Callable[..., object]
    mode: str
    input_names: tuple[str, ...]  # the parameters filled from the request
    input_defaults: tuple[object, ...]  # inspect.Parameter.empty when required
    wants_headers: bool
    # Dynamic batching (issue 8): run_batch(items) when the script defines it and batching is
    # on; None otherwise. Its items are what run() would get: the body string (plain), or the
    # dict of run()'s keyword arguments after inference-schema parsed them (schema).
    run_batch: Callable[..., object] | None = None
    batch_wants_headers: bool = False  # run_batch(items, request_headers=[...])
    parse_schema: Callable[[dict], dict] | None = None  # @input_schema's parsing, without run()


def load(path: str, *, batching: bool = False) -> EntryScript:
    """Import the script as module 'entry_module' (as Azure does) and inspect its run().

    With batching on (the default where it runs), also its run_batch(items), if it has one.
    """
    try:
        spec = importlib.util.spec_from_file_location("entry_module", path)
        if spec is None or spec.loader is None:
            raise ScriptError(f"Entry script {path} is not a Python file that can be imported.")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ScriptError:
        raise
    except BaseException as exc:
        raise ScriptError(f"Failed to import entry script {path}: {exc!r}") from exc

    for name in ("init", "run"):
        if not hasattr(module, name):
            raise ScriptError(f"User script at {path} does not have a {name}() function defined.")

    # Some Azure SDKs generate a driver module that forwards to the real score script; like
    # azmlinfsrv we call the real run() (the driver passes decorated arguments wrongly).
    driver = getattr(module, "driver_module", None)
    run = driver.run if isinstance(driver, ModuleType) and hasattr(driver, "run") else module.run
    # @rawhttp sets a flag in the aml_request module, whichever name the script imported it by.
    aml_request = sys.modules.get("mlcli.server.v1compat.aml_request")
    raw = bool(aml_request and aml_request._rawHttpRequested)
    script = _analyse(path, module, run, raw=raw)
    if batching and script.mode != RAW and getattr(module, "run_batch", None) is not None:
        script = _with_run_batch(script, module.run_batch)
    return script


def _analyse(path: str, module: ModuleType, run: Callable, *, raw: bool) -> EntryScript:
    params = list(inspect.signature(run).parameters.values())
    allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(param.kind not in allowed for param in params):
        raise ScriptError("run() cannot accept positional-only arguments, *args, or **kwargs.")
    wants_headers = any(param.name == "request_headers" for param in params)
    params = [param for param in params if param.name != "request_headers"]
    if not params:
        if wants_headers:
            raise ScriptError('run() needs to accept an argument other than "request_headers".')
        raise ScriptError("run() needs to accept an argument for input data.")

    decorated = _is_schema_decorated(run)
    if raw and decorated:
        raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
    if raw:
        mode, params = RAW, params[:1]
    elif decorated:
        mode = SCHEMA
    else:
        mode, params = PLAIN, params[:1]

    return EntryScript(
        path=path,
        module=module,
        init=module.init,
        run=run,
        mode=mode,
        input_names=tuple(param.name for param in params),
        input_defaults=tuple(param.default for param in params),
        wants_headers=wants_headers,
    )


def _with_run_batch(script: EntryScript, run_batch: object) -> EntryScript:
    usage = "Define it as def run_batch(items): ... returning one result per item, in order."
    if not callable(run_batch):
        raise ScriptError(f"run_batch in {script.path} is not a function. {usage}")
    try:
        params = list(inspect.signature(run_batch).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    names = [p.name for p in params]
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind not in variadic and p.name != "request_headers"
    ]
    if not params or params[0].kind not in positional or len(required) > 1:
        raise ScriptError(
            f"run_batch() in {script.path} must take one argument, the list of inputs. {usage}"
        )
    return dataclasses.replace(
        script,
        run_batch=run_batch,
        batch_wants_headers="request_headers" in names[1:],
        parse_schema=_schema_parser(script.run) if script.mode == SCHEMA else None,
    )


def _schema_parser(run: Callable) -> Callable[[dict], dict]:
    """run()'s inference-schema decorators replayed around a function that returns its
    keyword arguments: each batch item is parsed and validated as run(**item) would be."""
    import wrapt

    layers = []
    inner = run
    while isinstance(inner, wrapt.FunctionWrapper):
        wrapper = inner._self_wrapper
        # only inference-schema's own layers: another decorator's side effects belong to run()
        if getattr(wrapper, "__module__", "").startswith("inference_schema."):
            layers.append(wrapper)
        inner = inner.__wrapped__

    def arguments(**kwargs) -> dict:
        return kwargs

    parse = arguments
    for wrapper in reversed(layers):
        parse = wrapt.FunctionWrapper(parse, wrapper)
    return lambda kwargs: parse(**kwargs)


def _is_schema_decorated(run: Callable) -> bool:
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:
        return False
    return bool(is_schema_decorated(run))


def prepare_import_path(*, app_root: str, source_dir: str | None, entry_script: str) -> None:
    """sys.path as azmlinfsrv sets it (app root, then source directory), plus the script's folder.

    The script's own folder is an addition: score.py files that import a sibling module work
    unchanged whether or not the deployment made that folder the app root.
    """
    candidates = [app_root]
    if source_dir:
        candidates.append(str(Path(app_root) / source_dir))
    candidates.append(str(Path(entry_script).parent))
    for folder in candidates:
        if folder and folder not in sys.path:
            sys.path.append(folder)


def run_init(script: EntryScript) -> float:
    """Call init() once; returns how long it took in milliseconds."""
    started = time.perf_counter()
    script.init()
    return (time.perf_counter() - started) * 1000
