import json
import subprocess
import sys

import pytest

from synreal.cli import main
from synreal.stages import known_stages


@pytest.mark.parametrize("stage", known_stages())
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as done:
        main([stage, "--help"])
    assert done.value.code == 0
    assert "--spec-json" in capsys.readouterr().out


def test_user_error_is_one_line_and_exit_code_2(tmp_path):
    spec = json.dumps({"params": {"format": "afhq", "colour": 1}, "inputs": {"root": "x"}})
    proc = subprocess.run([sys.executable, "-m", "synreal", "ingest", "--spec-json", spec,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "synreal ingest: error: unknown key 'colour' in ingest params; known keys: "
        "['format', 'on_corrupt']."]
    assert not (tmp_path / "out").exists()


def test_missing_dataset_folder_leaves_no_artifact(tmp_path, capsys):
    spec = json.dumps({"params": {"format": "afhq"}, "inputs": {"root": str(tmp_path / "no")}})
    assert main(["ingest", "--spec-json", spec, "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_spec_from_file(tmp_path, capsys):
    (tmp_path / "spec.json").write_text("{not json")
    assert main(["ingest", "--spec-json", f"@{tmp_path / 'spec.json'}", "--out",
                 str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
