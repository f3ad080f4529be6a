"""azureml.monitoring.ModelDataCollector, as azureml-monitoring 0.1.0a21 behaves in a service.

The API, the designations, the eight `$aml_*` correlation columns (appended after the
features, in Azure's order), the values `collect()` returns and the accepted data (a list is
one row; a numpy array one row per row; a DataFrame its rows and column names) are Azure's.
Instead of Azure's native library and blob storage, rows go to mlcli's bounded writer
(mlcli/server/collect.py), which writes CSV and Parquet files under the service's folder.

Off unless AML_MODEL_DC_STORAGE_ENABLED is "true" (deploy sets it from the deploymentConfig),
as in Azure: the constructor prints Azure's notice and collect() returns None at once.
"""

from __future__ import annotations

import operator
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from mlcli.server import collect

__all__ = ["ModelDataCollector"]

DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
NO_REQUEST_ID = "00000000-0000-0000-0000-000000000000"  # Azure's, outside a request
NOT_ENABLED = (
    "Data collection is not enabled. Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
    "'true' to enable (http://aka.ms/amlmodeldatacollection)."
)
DEBUG_MODE = (
    "Data collection is in debug mode. Set environment variable AML_MODEL_DC_STORAGE_ENABLED to "
    "'true' to send data to the cloud (http://aka.ms/amlmodeldatacollection)."
)
BAD_DATA = (
    "collect failed: input data must be list,numpy array, pandas dataframe, or spark "
    "dataframe. Corresponding modules must be installed first."
)


class ModelDataCollector:
    """Collects a model's inputs, predictions, labels or signals into the service's files."""

    AML_DC_CORRELATION_HEADER = "$aml_dc_correlation_id"
    AML_DC_SCORING_TIMESTAMP_HEADER = "$aml_dc_scoring_timestamp"
    AML_DC_BOUNDARY_HEADER = "$aml_dc_boundary"
    AML_WORKSPACE_HEADER = "$aml_workspace"
    AML_SERVICE_NAME_HEADER = "$aml_service_name"
    AML_MODEL_NAME_HEADER = "$aml_model_name"
    AML_MODEL_VERSION_HEADER = "$aml_model_version"
    AML_REQUEST_ID_HEADER = "$aml_request_id"
    CORRELATION_HEADERS = (
        AML_DC_CORRELATION_HEADER,
        AML_DC_SCORING_TIMESTAMP_HEADER,
        AML_DC_BOUNDARY_HEADER,
        AML_WORKSPACE_HEADER,
        AML_SERVICE_NAME_HEADER,
        AML_MODEL_NAME_HEADER,
        AML_MODEL_VERSION_HEADER,
        AML_REQUEST_ID_HEADER,
    )
    _correlation_values = staticmethod(operator.itemgetter(*CORRELATION_HEADERS))

    def __init__(
        self,
        model_name: str,
        designation: str = "default",
        feature_names: list | None = None,
        workspace: str = "default/default/default",
        webservice_name: str = "default",
        model_version: str = "default",
        collection_name: str = "default",
    ) -> None:
        self._feature_names = list(feature_names) if feature_names is not None else None
        self._correlation_headers: tuple[str, ...] = ()
        self._inputs = self._fast = False
        self._fixed: tuple = ()
        self._width, self._key = -1, ((), ())
        storing = collect.enabled()
        # AML_MODEL_DC_DEBUG: Azure's way to see the rows in the log instead (or as well)
        self._debug = os.environ.get("AML_MODEL_DC_DEBUG", "").strip().lower() == "true"
        self._enabled = storing or self._debug
        if self._debug:
            # Azure prints its notices; in a worker they become log lines of the script
            sys.stdout.write(DEBUG_MODE + "\n")
        elif not storing:
            sys.stdout.write(NOT_ENABLED + "\n")
            return
        designation = "general" if designation == "default" else designation
        if designation not in DESIGNATIONS:
            sys.stdout.write(
                "Incorrect designation value. Supported values: 'default', 'inputs', "
                "'predictions', 'labels', 'signals', 'general'\n"
            )
            self._enabled = False
            return
        self._designation = designation
        self.model_name = model_name
        self.model_version = str(
            _latest_version(model_name) if model_version == "default" else model_version
        )
        environ = os.environ
        # Azure takes the workspace from the service's config map, as mlcli from deploy
        self.workspace_name = "default"
        if workspace == "default/default/default" and environ.get("MLCLI_COLLECT_WORKSPACE"):
            workspace = environ["MLCLI_COLLECT_WORKSPACE"]
            self.workspace_name = workspace.lower().rsplit("/", 1)[-1]
        self.workspace = workspace.lower()
        if webservice_name == "default":
            webservice_name = environ.get("SERVICE_NAME") or webservice_name
        self.service_name = webservice_name
        self.aml_dc_hour_boundary = environ.get("AML_MODEL_DC_BOUNDARY") == "hour"
        # the rest of what Azure's constructor sets, from the same variables (no Azure ids)
        self.service_internal_id = environ.get("SERVICE_ID", "")
        self.compute_name = environ.get("COMPUTE_NAME", "")
        self.compute_type = environ.get("COMPUTE_TYPE", "")
        self.compute_location = environ.get("COMPUTE_LOCATION", "")
        self.model_internal_id = self.workspace_internal_id = ""
        self.model_config_map = None
        self._template = {
            self.AML_DC_SCORING_TIMESTAMP_HEADER: "",
            self.AML_REQUEST_ID_HEADER: "",
            self.AML_DC_CORRELATION_HEADER: "",
            self.AML_DC_BOUNDARY_HEADER: 60 if self.aml_dc_hour_boundary else 60 * 24,
            self.AML_WORKSPACE_HEADER: self.workspace,
            self.AML_SERVICE_NAME_HEADER: self.service_name,
            self.AML_MODEL_NAME_HEADER: self.model_name,
            self.AML_MODEL_VERSION_HEADER: self.model_version,
        }
        self._fixed = tuple(self._template[name] for name in self.CORRELATION_HEADERS[2:7])
        # Azure names the file after the designation, except for signals and general
        self._file_stem = collection_name if designation in ("signals", "general") else designation
        if designation == "inputs":
            self._correlation_headers = self.CORRELATION_HEADERS
            self._inputs = True
        self._folders = (_safe(model_name), _safe(self.model_version), designation,
                         _safe(self._file_stem))  # fmt: skip
        self._names: dict[tuple, tuple[str, ...]] = {}
        self._writer = collect.writer() if storing else None
        # Azure: the blob folder its native library writes to; here, the service's folder
        self.data_collector_storage_path = str(self._writer.root) if self._writer else ""
        self._fast = self._writer is not None and not self._debug  # rows only to the writer

    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict | None:
        """Queue the data for writing; for "inputs", return the correlation values (pass them
        to add_correlations() of the predictions' collector)."""
        if not self._enabled:
            return None
        if type(input_data) is list and self._fast:  # the common case: one row, at once
            if self._inputs:
                correlations, row = self._correlated_row(input_data, user_correlation_id)
            else:
                correlations, row = None, tuple(input_data)
            if len(row) != self._width:
                self._column_names(len(row))
            self._writer.put_row(self._key, row)
            return correlations
        correlations = None
        if self._inputs:
            correlations = self._correlations(user_correlation_id)
            input_data = self.add_correlations(input_data, correlations)
        table = self._table(input_data)
        if table is None:
            warnings.warn(BAD_DATA, stacklevel=2)
            return None
        self._queue(*table)
        return correlations

    def _queue(self, columns: tuple[str, ...], rows: list, named: bool) -> None:
        if rows and self._writer is not None:
            self._writer.put((self._folders, columns), rows)
        if rows and self._debug:
            # Azure's debug print has a header line only for named columns: feature_names,
            # or a DataFrame's own (the files always have one)
            sys.stdout.write(collect.csv_text(columns if named else None, rows))

    def add_correlations(self, input_data: Any, correlations: dict | None) -> Any:
        """The data with the eight correlation columns appended (Azure's helper)."""
        if correlations is None:
            return input_data
        if self._correlation_headers is not self.CORRELATION_HEADERS:
            self._correlation_headers = self.CORRELATION_HEADERS
            self._width = -1  # the column names change
        values = self._correlation_values(correlations)
        if isinstance(input_data, list):
            return [*input_data, *values]
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(input_data, numpy.ndarray):
            if input_data.ndim == 1:
                input_data = numpy.array([input_data])
            extra = numpy.repeat(numpy.array([values], dtype=object), input_data.shape[0], axis=0)
            return numpy.append(input_data, extra, axis=1)
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(input_data, pandas.DataFrame):
            frame = input_data.copy(deep=False)
            for offset, name in enumerate(self.CORRELATION_HEADERS):
                frame.insert(len(input_data.columns) + offset, name, correlations[name])
            return frame
        warnings.warn(BAD_DATA, stacklevel=2)
        return input_data

    def _correlations(self, user_correlation_id: str) -> dict:
        return self._correlated_row((), user_correlation_id)[0]

    def _correlated_row(self, features: Any, user_correlation_id: str) -> tuple[dict, tuple]:
        """Azure's eight values, in its order: this collector's fixed ones copied from a
        template, the request's own (time, request id, correlation id) set in place; and the
        row of the features and those values, built from the same strings without reading
        them back from the dict."""
        correlations = self._template.copy()
        stamp, generated = collect.stamp_and_id()
        request_id = collect.current_request_id or NO_REQUEST_ID
        correlation = f"{user_correlation_id}-{generated}" if user_correlation_id else generated
        correlations[self.AML_DC_SCORING_TIMESTAMP_HEADER] = stamp
        correlations[self.AML_REQUEST_ID_HEADER] = request_id
        correlations[self.AML_DC_CORRELATION_HEADER] = correlation
        # CORRELATION_HEADERS' order: correlation id, timestamp, 5 fixed, request id
        return correlations, (*features, correlation, stamp, *self._fixed, request_id)

    def _table(self, data: Any) -> tuple[tuple[str, ...], list, bool] | None:
        """(column names, rows as lists, whether the names were given rather than made up),
        or None for a type Azure does not take."""
        if isinstance(data, list):
            rows = [list(data)]
        else:
            numpy = sys.modules.get("numpy")
            pandas = sys.modules.get("pandas")
            if numpy is not None and isinstance(data, numpy.ndarray):
                rows = (data.reshape(1, -1) if data.ndim <= 1 else data).tolist()
            elif pandas is not None and isinstance(data, pandas.DataFrame):
                names = tuple(str(name) for name in data.columns)
                return names, data.astype(object).values.tolist(), True
            else:
                return None
        # a list is one row and an ndarray is rectangular: every row has the first one's width
        return self._column_names(len(rows[0]) if rows else 0), rows, bool(self._feature_names)

    def _column_names(self, width: int) -> tuple[str, ...]:
        """feature_names, then the correlation columns when the data carries them; columns
        nobody named get the names Azure's readers give a header-less CSV (Column1, ...)."""
        key = (width, len(self._correlation_headers))
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = self._name_columns(width)
        # the next call's likely answer, and its writer key
        self._width, self._key = width, (self._folders, names)
        return names

    def _name_columns(self, width: int) -> tuple[str, ...]:
        metadata = self._correlation_headers if width >= len(self._correlation_headers) else ()
        features = width - len(metadata)
        names = list((self._feature_names or [])[:features])
        names += [f"Column{index + 1}" for index in range(len(names), features)]
        return (*(str(name) for name in names), *metadata)


def _latest_version(model_name: str) -> str:
    """The highest deployed version of the model (Azure reads it from its config map)."""
    from mlcli.server.v1compat.model import _models_folders

    for folder in _models_folders():
        model_folder = Path(folder) / model_name
        if model_folder.is_dir():
            versions = [int(p.name) for p in model_folder.iterdir() if p.name.isdigit()]
            if versions:
                return str(max(versions))
    return "default"


def _safe(part: str) -> str:
    """A path component that stays inside the collection folder."""
    text = str(part).replace("/", "_").replace("\\", "_").strip()
    return "_" if text in ("", ".", "..") else text
