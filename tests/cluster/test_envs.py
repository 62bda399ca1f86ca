"""Every rule's conda env pins every third-party package its code imports, as pyproject does.

conda is not installed where the tests run, so this reads the code instead: for each rule,
the env file of its ``conda:`` directive, the stages its shell command runs, and the imports
those stages execute, found by following ``import`` statements through the synreal package
(module-level imports of every module reached; inside a module reached through
``from M import f``, the bodies of ``f`` and of the functions and classes of M it names;
module names given as strings to registries). The CLI's own module-level imports count for
every rule, because ``python -m synreal`` imports every stage module to build its parser.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO

SRC = REPO / "src"
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
RULE = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)
MODULE_STRING = re.compile(r"^synreal(\.\w+)+$")
#: Launchers installed by the torch wheel (torchrun) need nothing beyond torch.
LAUNCHERS = {"torchrun": "torch"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """``{distribution: version}`` of ``name==version`` requirements."""
    found = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        found[canonical(name.strip())] = version.strip()
    return found


PYPROJECT = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
                 ["dependencies"])


def env_pins(path: Path) -> dict[str, str]:
    """Exact pins of a conda env file: its pip section and ``name=version`` conda packages."""
    env = yaml.safe_load(path.read_text())
    found = {}
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            found |= pins(dependency.get("pip", []))
        else:
            name, _, version = dependency.partition("=")
            found[canonical(name)] = version.lstrip("=")
    return found


# ---------------------------------------------------------------- rules


def rules() -> dict[str, tuple[Path, set[str]]]:
    """``rule -> (env file, stages its shell runs)`` for every rule with a shell command."""
    found = {}
    for smk in RULES:
        for name, body in RULE.findall(smk.read_text()):
            if "shell:" not in body:
                continue
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", body)
            assert conda, f"rule {name} ({smk.name}) has no conda: env"
            command = body.split("shell:", 1)[1]
            # plain or f-string shell commands ({{params.cli}} in an f-string)
            command = command.replace("{{", "{").replace("}}", "}")
            stage = re.search(r"\{params\.\w+\} (\{wildcards\.stage\}|\w+) ", command)
            assert stage, f"rule {name}: no `{{params.cli}} <stage>` in its shell command"
            if stage[1] == "{wildcards.stage}":
                stages = set(re.search(r"stage=\"([\w|]+)\"", body)[1].split("|"))
            else:
                stages = {stage[1]}
            found[name] = ((smk.parent / conda[1]).resolve(), stages)
    return found


# ---------------------------------------------------------------- imports


def module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def parsed(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text())


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module
    package = module if module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(nodes: list[ast.AST], module: str) -> list[tuple[str, str | None]]:
    """``(module, imported name or None)`` of every import under ``nodes``, plus module
    names passed as strings (registries) and to ``import_module``. Optional packages
    loaded through ``require_module`` (audit backends that say what to install) are not
    pinned anywhere and are left out."""
    found = []
    for node in (sub for top in nodes for sub in ast.walk(top)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            found += [(base, alias.name) for alias in node.names]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and MODULE_STRING.match(node.value) and module_file(node.value)
              and module != "synreal.stages"):  # the stage registry: see module docstring
            found.append((node.value, None))
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"):
            found.append((node.args[0].value, None))
    return found


def _definitions(module: str, names: set[str]) -> list[ast.AST]:
    """The defs/classes ``names`` of ``module`` and those of the module they mention."""
    defs = {node.name: node for node in parsed(module).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    todo, chosen = [n for n in names if n in defs], {}
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen[name] = defs[name]
        todo += [sub.id for sub in ast.walk(defs[name])
                 if isinstance(sub, ast.Name) and sub.id in defs and sub.id not in chosen]
    return list(chosen.values())


def third_party(starts: dict[str, set[str] | None]) -> set[str]:
    """Top-level third-party modules imported from ``starts``: module -> names (None: all)."""
    seen: dict[str, set[str] | None] = {}
    todo = list(starts.items())
    found = set()
    while todo:
        module, names = todo.pop()
        if module_file(module) is None:
            continue
        done = seen.get(module, set())
        if done is None or (names is not None and names <= done):
            continue
        seen[module] = None if names is None else done | names
        tree = parsed(module)
        if names is None:
            nodes = [tree]
        else:  # module level (without function bodies) + the named definitions
            nodes = [n for n in tree.body if not isinstance(
                n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
            nodes += [base for n in tree.body if isinstance(n, ast.ClassDef)
                      for base in n.bases + n.decorator_list]
            nodes += _definitions(module, names)
        for target, name in _imports(nodes, module):
            top = target.split(".")[0]
            if top == "synreal":
                parts = target.split(".")
                for depth in range(2, len(parts)):  # parent packages run their __init__
                    todo.append((".".join(parts[:depth]), set()))
                if name is not None and module_file(f"{target}.{name}"):
                    todo.append((f"{target}.{name}", None))
                else:
                    todo.append((target, None if name is None else {name}))
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


@cache
def cli_imports() -> set[str]:
    """What ``python -m synreal`` imports before running any stage (module level only)."""
    from synreal.stages import STAGE_MODULES

    return third_party({"synreal.__main__": set(), "synreal.cli": set(),
                        **{module: set() for module in STAGE_MODULES}})


@cache
def stage_imports(stage: str) -> set[str]:
    from synreal.stages import get_stage

    return third_party({get_stage(stage).run.__module__: None})


@cache
def installed() -> dict[str, list[str]]:
    return packages_distributions()


def distribution(module: str) -> str:
    names = installed().get(module)
    assert names, f"no installed distribution provides {module!r}"
    pinned = [canonical(n) for n in names if canonical(n) in PYPROJECT]
    assert pinned, f"{module!r} ({names}) is imported but not pinned in pyproject.toml"
    return pinned[0]


# ---------------------------------------------------------------- tests

RULE_ENVS = rules()


def test_rules_were_found():
    assert {"toyworld", "ingest", "generate", "pretrain", "features", "evaluate",
            "table"} <= set(RULE_ENVS)
    assert {path.name for path, _ in RULE_ENVS.values()} == {
        "generate.yaml", "train.yaml", "eval.yaml", "report.yaml"}


@pytest.mark.parametrize("rule", sorted(RULE_ENVS))
def test_env_pins_every_imported_package_at_the_pyproject_version(rule):
    env_file, stages = RULE_ENVS[rule]
    env = env_pins(env_file)
    modules = cli_imports().union(*(stage_imports(stage) for stage in stages))
    assert "numpy" in modules  # the scan found something
    needed = {distribution(module) for module in modules}
    missing = [f"{dist}=={PYPROJECT[dist]}" for dist in sorted(needed - set(env))]
    assert not missing, f"rule {rule} imports them; pin in {env_file.name}: {missing}"
    for dist in needed:
        assert env[dist] == PYPROJECT[dist], (
            f"{env_file.name} pins {dist}=={env[dist]}, pyproject {PYPROJECT[dist]}")


def test_launchers_are_in_the_env():
    env = env_pins(RULE_ENVS["pretrain"][0])
    assert all(canonical(dist) in env for dist in LAUNCHERS.values())


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")),
                         ids=lambda path: path.name)
def test_env_files_agree_with_pyproject_and_use_no_defaults_channel(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert "nodefaults" in env["channels"] and "defaults" not in env["channels"]
    for dist, version in env_pins(env_file).items():
        if dist in PYPROJECT:
            assert version == PYPROJECT[dist], f"{env_file.name}: {dist}=={version}"
