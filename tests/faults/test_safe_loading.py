"""Safe loading: nothing unpickles a file, and config values reach shell commands quoted."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ..conftest import REPO
from .conftest import snakemake

#: Calls that unpickle unless told not to: (module alias, function).
UNSAFE = {("pickle", "load"), ("pickle", "loads"), ("joblib", "load"), ("dill", "load"),
          ("cloudpickle", "load"), ("torch", "load")}


def unsafe_loads(source: str) -> list[str]:
    """``line: call`` of every unpickling call in ``source`` that is not explicitly safe.

    ``torch.load`` is safe only with ``weights_only=True`` (a literal); ``numpy.load`` only
    without ``allow_pickle=True``; pickle, joblib, dill and cloudpickle loads never are.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            continue
        call = (node.func.value.id, node.func.attr)
        keywords = {k.arg: k.value for k in node.keywords}
        if call == ("torch", "load"):
            flag = keywords.get("weights_only")
            if isinstance(flag, ast.Constant) and flag.value is True:
                continue
        elif call in {("np", "load"), ("numpy", "load")}:
            flag = keywords.get("allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                continue
        elif call not in UNSAFE:
            continue
        found.append(f"{node.lineno}: {call[0]}.{call[1]}")
    return found


def test_the_checker_catches_unsafe_loads():
    source = ("torch.load(f)\ntorch.load(f, weights_only=False)\ntorch.load(f, weights_only=flag)"
              "\ntorch.load(f, weights_only=True)\npickle.loads(b)\nnp.load(f, allow_pickle=True)"
              "\nnp.load(f)\n")
    assert unsafe_loads(source) == ["1: torch.load", "2: torch.load", "3: torch.load",
                                    "5: pickle.loads", "6: np.load"]


def test_no_file_is_unpickled_anywhere_in_src():
    sources = sorted((REPO / "src").rglob("*.py"))
    assert len(sources) > 50
    offenders = {str(p.relative_to(REPO)): bad for p in sources
                 if (bad := unsafe_loads(p.read_text()))}
    assert offenders == {}
    imports = [p for p in sources if re.search(r"^\s*(import|from) (pickle|dill|cloudpickle)\b",
                                               p.read_text(), re.M)]
    assert imports == []


#: Params that are command prefixes built by the workflow itself (the repository's ``src``
#: path and, for pretraining, an integer GPU count: ``synreal.launch``), never config strings.
COMMAND_PREFIXES = {"cli", "launch"}


def test_every_config_value_in_a_shell_command_is_quoted():
    """Rules pass config to jobs only as ``{params.spec:q}``, besides the command prefixes."""
    rules = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    checked = 0
    for path in rules:
        for field in re.findall(r"\{params\.(\w+(?::\w+)?)\}", path.read_text()):
            checked += 1
            assert field in COMMAND_PREFIXES or field.endswith(":q"), \
                f"{path.name}: {{params.{field}}} reaches the shell unquoted; write :q"
    assert checked >= 2 * len(rules) - 2


NASTY = "Bob's \"toy\" study; $(touch PWNED) `touch PWNED` & echo done"
FOLDER = "my \"data\" dir's"
ODD_CLASSES = ["bob's dog", "tabby \"cat\""]


@pytest.mark.slow
def test_names_with_quotes_and_spaces_survive_the_shell(tmp_path):
    """Study name, dataset path and prompt template reach jobs inside ``--spec-json``."""
    rng = np.random.default_rng(0)
    for folder, classes in ((FOLDER, ["cat", "dog"]), ("odd", ODD_CLASSES)):
        for name in classes:
            (tmp_path / folder / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                    tmp_path / folder / name / f"{i} x.png")
    config = {"study": {"name": NASTY}, "tables": ["datasets"],
              "datasets": {"real": {"format": "imagefolder", "path": FOLDER},
                           "odd": {"format": "imagefolder", "path": "odd"}},
              "generators": {"syn": {"like": "real", "params": {
                  "backend": "toy", "dataset": "custom", "image_size": 16,
                  "templates": ["a photo of a {name}, \"quoted\" & $HOME `id`"]}}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "2", "table_datasets", config=path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp_path.rglob("PWNED"))
    assert NASTY in (tmp_path / "results" / "tables" / "datasets.md").read_text()
    [generated] = (tmp_path / "results" / "generate").glob("*/manifest.parquet")
    prompts = pd.read_parquet(generated)["prompt"]
    assert len(prompts) == 4
    assert prompts.str.contains("\"quoted\" & $HOME `id`", regex=False).all()
    names = set()
    for manifest in (tmp_path / "results" / "ingest").glob("*/manifest.parquet"):
        names |= set(pd.read_parquet(manifest)["label_name"])
    assert names == {"cat", "dog", *ODD_CLASSES}
    assert not list(Path(tmp_path / "results").rglob("*.tmp-*"))
