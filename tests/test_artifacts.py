import json
import signal
import subprocess
import sys
import textwrap

import pytest

from synreal.artifacts import (
    atomic_artifact,
    is_complete,
    partial_dir,
    read_spec,
    write_json_atomic,
)
from synreal.errors import DataError


def test_success_renames_into_place_with_spec(tmp_path):
    final = tmp_path / "stage" / "abc"
    with atomic_artifact(final, {"key": "abc"}) as tmp:
        assert not final.exists()
        (tmp / "out.txt").write_text("x")
    assert (final / "out.txt").read_text() == "x"
    spec = read_spec(final)
    assert spec["key"] == "abc" and "libraries" in spec["provenance"]
    assert not list(final.parent.glob(".abc.tmp-*"))


def test_failure_leaves_previous_artifact_and_no_temp(tmp_path):
    final = tmp_path / "abc"
    with atomic_artifact(final, {"v": 1}) as tmp:
        (tmp / "out.txt").write_text("good")
    with pytest.raises(OSError), atomic_artifact(final, {"v": 2}) as tmp:
        (tmp / "out.txt").write_text("half")
        raise OSError("disk full")
    assert (final / "out.txt").read_text() == "good"
    assert read_spec(final)["v"] == 1
    assert not list(tmp_path.glob(".abc.tmp-*"))


def test_empty_directory_made_by_snakemake_is_replaced(tmp_path):
    final = tmp_path / "abc"
    final.mkdir()
    (final / "stale").write_text("from a crashed non-atomic run")
    with atomic_artifact(final, {}) as tmp:
        (tmp / "new").write_text("n")
    assert sorted(p.name for p in final.iterdir()) == ["new", "spec.json"]


def test_killed_stage_leaves_nothing_that_looks_finished(tmp_path):
    final = tmp_path / "abc"
    script = textwrap.dedent(f"""
        import os, time
        from synreal.artifacts import atomic_artifact
        with atomic_artifact({str(final)!r}, {{}}) as tmp:
            (tmp / "part").write_text("half")
            print("inside", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not is_complete(final)
    assert not final.exists()
    # the next run cleans the leftover temp directory and finishes
    with atomic_artifact(final, {}) as tmp:
        (tmp / "part").write_text("whole")
    assert is_complete(final)
    assert not list(tmp_path.glob(".abc.tmp-*"))


def test_read_spec_of_unfinished_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a finished artifact"):
        read_spec(tmp_path)


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"b": 1}


def test_resumable_work_survives_failure_and_is_reused(tmp_path):
    final = tmp_path / "gen"
    with pytest.raises(KeyboardInterrupt), atomic_artifact(final, {}, resumable=True) as work:
        (work / "shard-0").write_text("done")
        raise KeyboardInterrupt
    assert not final.exists()
    with atomic_artifact(final, {}, resumable=True) as work:
        assert (work / "shard-0").read_text() == "done"
        (work / "shard-1").write_text("done")
    assert sorted(p.name for p in final.iterdir()) == ["shard-0", "shard-1", "spec.json"]
    assert not partial_dir(final).exists()
