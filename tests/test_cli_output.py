"""Output formats, --query, global options and the import budget of `ml --help`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlcli.cli import ml

HEAVY = {"rich", "jsonschema", "yaml", "jmespath", "sqlite3", "docker", "mlcli.registry"}


@pytest.fixture
def two_models(model_dir: Path) -> None:
    runner = CliRunner()
    for description in ("first", "second"):
        result = runner.invoke(
            ml, ["model", "register", "-p", str(model_dir), "-n", "m", "-d", description]
        )
        assert result.exit_code == 0, result.stderr


def listed(*args: str) -> str:
    result = CliRunner().invoke(ml, ["model", "list", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_json_is_the_default_and_indented(two_models) -> None:
    out = listed()

    assert [m["id"] for m in json.loads(out)] == ["m:2", "m:1"]
    assert out.startswith("[\n  {\n")


def test_jsonc_without_a_terminal_is_plain_json(two_models) -> None:
    assert json.loads(listed("-o", "jsonc")) == json.loads(listed())


def test_yaml_holds_the_same_data(two_models) -> None:
    assert yaml.safe_load(listed("-o", "yaml")) == json.loads(listed())


def test_tsv_prints_scalar_values_one_row_per_item(two_models) -> None:
    rows = [line.split("\t") for line in listed("-o", "tsv").splitlines()]

    assert len(rows) == 2
    assert rows[0][:3] == ["m:2", "m", "2"]
    assert "second" in rows[0]


def test_table_has_a_header_and_the_chosen_columns(two_models) -> None:
    lines = listed("-o", "table").splitlines()

    assert lines[0].split() == ["Name", "Version", "Framework", "CreatedTime", "Description"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:2] == ["m", "2"]
    assert lines[2].split()[-1] == "second"


def test_table_after_a_query_shows_the_queried_fields(two_models) -> None:
    lines = listed("-o", "table", "--query", "[].{id: id, desc: description}").splitlines()

    assert lines[0].split() == ["Id", "Desc"]
    assert lines[2].split() == ["m:2", "second"]


def test_query_then_tsv_gives_one_value_per_line(two_models) -> None:
    assert listed("--query", "[].version", "-o", "tsv") == "2\n1\n"


def test_query_selecting_a_scalar_prints_json_scalar(two_models) -> None:
    assert listed("--query", "[0].id") == '"m:2"\n'


def test_none_prints_nothing(two_models) -> None:
    assert listed("-o", "none") == ""


def test_output_format_is_case_insensitive(two_models) -> None:
    assert listed("-o", "TSV", "--query", "[].version") == "2\n1\n"


def test_only_show_errors_keeps_errors(two_models) -> None:
    result = CliRunner().invoke(ml, ["model", "show", "-i", "m:9", "--only-show-errors"])

    assert result.exit_code == 3
    assert "no version 9" in result.stderr


def test_debug_prints_the_traceback_and_keeps_the_exit_code(two_models) -> None:
    result = CliRunner().invoke(ml, ["model", "show", "-i", "m:9", "--debug"])

    assert result.exit_code == 3  # as without --debug: scripts test the code
    assert "Traceback (most recent call last)" in result.stderr
    assert "NotFoundError" in result.stderr


def _modules_loaded_by(*args: str) -> set[str]:
    code = (
        "import sys\n"
        "from mlcli.cli import ml\n"
        f"try:\n    ml({list(args)!r}, prog_name='ml')\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args", [["--help"], ["model", "--help"], ["model", "register", "--help"], ["config", "--help"]]
)
def test_help_loads_no_heavy_module(args: list[str]) -> None:
    assert _modules_loaded_by(*args).isdisjoint(HEAVY)


def test_listing_json_loads_neither_rich_nor_jmespath_nor_yaml(two_models) -> None:
    assert _modules_loaded_by("model", "list").isdisjoint(
        {"rich", "jmespath", "yaml", "jsonschema"}
    )
