"""The study plan for the paper tables: what each table reads, and what it shares."""

import copy

import pytest
import yaml

from synreal.config import validate_config
from synreal.errors import ConfigError
from synreal.plan import build_plan

from .conftest import REPO

MICRO_TABLES = REPO / "tests" / "configs" / "micro_tables.yaml"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(MICRO_TABLES.read_text())


def _plan(config):
    return build_plan(validate_config(copy.deepcopy(config)))


def test_the_configured_guidance_scale_is_the_generator_itself(config):
    plan = _plan(config)
    generator, audit, pretrain = plan.cfg[7.5]
    assert generator.key == plan.generators["afhq_syn"].key
    assert audit.key == plan.audits["afhq_syn"].key
    assert pretrain.key == plan.pretrain["synthetic"].key
    other = plan.cfg[2.5][0]
    assert other.key != generator.key and other.params["cfg_scale"] == 2.5


def test_realtune_jobs_continue_from_their_pretraining_runs(config):
    plan = _plan(config)
    assert len(plan.tuned) == 4 + 6  # ssl: 2 runs x 2 data; supervised: 3 runs x 2 data
    ssl = plan.tuned[("synthetic", "ssl", "real")]
    assert ssl.upstream["checkpoint"] == plan.pretrain["synthetic"].ref
    assert ssl.upstream["data"] == plan.datasets["afhq"].ref
    assert ssl.params["dino"]["epochs"] == 1 and ssl.params["tune"]["mode"] == "ssl"
    supervised = plan.tuned[("mix50", "supervised", "synthetic")]
    assert supervised.upstream["data"] == plan.generators["pets_syn"].ref
    assert supervised.upstream["dataset"] == plan.datasets["pets"].ref


def test_mix_ratio_rows_are_ordered_by_real_share(config):
    table = _plan(config).tables["mix_ratio"]
    labels = [table.params["runs"][name]["labels"]["real %"]
              for name in table.params["order"]]
    assert labels == [0, 50, 100]


def test_every_table_reads_only_artifacts_it_names_as_inputs(config):
    plan = _plan(config)
    for table in plan.tables.values():
        for row in table.params.get("runs", {}).values():
            for key, path in row.items():
                if key not in ("labels", "label_columns", "paper", "data", "replicates"):
                    assert path in table.needs, (table.name, key)
            for replicate in row.get("replicates", []):
                for key, path in replicate.items():
                    if key != "seed":
                        assert path in table.needs, (table.name, key)


@pytest.mark.parametrize(("drop", "table", "message"), [
    ("realtune", "realtune", "realtune.ssl section"),
    ("cfg_sweep", "cfg", "cfg_sweep section"),
])
def test_a_table_without_its_section_names_the_section(config, drop, table, message):
    del config[drop]
    config["tables"] = ["datasets", table]
    with pytest.raises(ConfigError, match=message):
        _plan(config)


def test_pretrain_finetune_needs_a_mixed_run(config):
    del config["pretrain"]["runs"]["mix50"]
    config["tables"] = ["datasets", "pretrain_finetune"]
    with pytest.raises(ConfigError, match="mixed-data pretraining run"):
        _plan(config)


def _replicated(config, replicates=2, controls=True):
    config["replicates"] = replicates
    if controls:
        config["controls"] = {"negative": True, "positive": True}
    return _plan(config)


def test_each_replicate_seed_is_its_own_pretraining_run_and_the_first_keeps_its_key(config):
    single = _plan(config)
    plan = _replicated(config, 3, controls=False)
    assert plan.seeds == [0, 1, 2]
    for name, jobs in plan.replicates.items():
        assert jobs[0].key == single.pretrain[name].key  # existing caches stay valid
        assert [job.params["dino"]["seed"] for job in jobs] == [0, 1, 2]
        assert len({job.key for job in jobs}) == 3
        features = [e["features"].upstream["checkpoint"] for e in plan.replicate_evaluations[name]]
        assert features == [job.ref for job in jobs]
    tuned = plan.tuned_replicates[("synthetic", "ssl", "real")]
    assert [job.upstream["checkpoint"] for job in tuned] == \
        [job.ref for job in plan.replicates["synthetic"]]
    assert [job.params["tune"]["seed"] for job in tuned] == [0, 1, 2]
    assert tuned[0].key == single.tuned[("synthetic", "ssl", "real")].key


def test_a_seed_list_and_a_run_list_replicate_only_those_runs(config):
    plan = _replicated(config, {"seeds": [5, 7], "runs": ["real", "synthetic"]})
    assert plan.seeds == [5, 7]
    assert [j.params["dino"]["seed"] for j in plan.replicates["real"]] == [5, 7]
    assert len(plan.replicates["mix50"]) == 1
    # the controls follow the run they copy (real)
    assert len(plan.replicates["control_positive"]) == 2
    main = plan.tables["main"].params["runs"]
    assert {len(row["replicates"]) for row in main.values()} == {2}
    mix = plan.tables["mix_ratio"].params["runs"]
    assert sorted(len(row["replicates"]) for row in mix.values()) == [1, 2, 2]


def test_the_main_table_has_the_control_rows_on_disjoint_halves(config):
    plan = _replicated(config)
    main = plan.tables["main"]
    assert main.params["order"] == ["real", "synthetic", "control_reference",
                                    "control_negative", "control_positive"]
    assert main.params["controls"] == {"reference": "control_reference",
                                       "negative": "control_negative",
                                       "positive": "control_positive"}
    parts = {part: job.params["part"] for part, job in plan.controls.items()}
    assert parts == {"reference": "reference", "negative": "negative", "positive": "positive"}
    negative = plan.replicates["control_negative"][0]
    assert negative.upstream["real"] == plan.controls["negative"].ref
    assert plan.replicates["control_positive"][0].params["data"]["source"] == "synthetic"
    for run in ("control_reference", "control_negative", "control_positive"):
        for job in plan.replicates[run]:
            assert job.target in main.needs


def test_the_control_halves_are_disjoint_stratified_and_cover_the_split():
    import pandas as pd

    from synreal.stages.control import split_halves

    rows = pd.DataFrame({"id": [f"{c}{i}" for c in "abc" for i in range(7)],
                         "label": [c for c in "abc" for _ in range(7)]})
    a, b = split_halves(rows, seed=0)
    assert set(a["id"]).isdisjoint(b["id"]) and set(a["id"]) | set(b["id"]) == set(rows["id"])
    assert a.groupby("label").size().tolist() == [4, 4, 4]
    assert b.groupby("label").size().tolist() == [3, 3, 3]
    again, _ = split_halves(rows.sample(frac=1, random_state=1), seed=0)
    assert again["id"].tolist() == a["id"].tolist()  # the order of the rows does not matter


@pytest.mark.parametrize(("value", "message"), [
    (0, r"^replicates is 0 but a study needs at least one training seed; set replicates: 1"),
    ([0, 1, 1], r"^replicates lists the seed\(s\) \[1\] more than once; .* distinct seeds"),
    ({"seeds": [2, 2]}, r"^replicates\.seeds lists the seed\(s\) \[2\] more than once"),
    ({"seeds": 0}, r"^replicates\.seeds is 0 but"),
    ({"seeds": 2, "runs": ["rael"]}, r"^replicates\.runs names 'rael', which is not a "),
])
def test_bad_replicates_are_one_sentence_naming_the_key(config, value, message):
    config["replicates"] = value
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(config)
    assert "\n" not in str(error.value)


def test_a_control_split_too_small_for_its_held_out_half_names_the_key(config):
    config["controls"] = {"negative": True}
    config["datasets"]["afhq"]["toyworld"]["train"] = 3  # halves of 1 per class: 3 images
    with pytest.raises(ConfigError, match=r"^controls: the held-out half of datasets\.afhq's "
                                          r"training split has 3 images .* fewer than one "
                                          r"batch of 6; render at least 4 per class"):
        validate_config(config)


def test_a_control_run_must_be_a_real_run(config):
    config["controls"] = {"positive": True, "run": "synthetic"}
    with pytest.raises(ConfigError, match=r"^controls\.run: 'synthetic' is not a pretraining "
                                          r"run with source: real"):
        validate_config(config)


def test_the_control_stage_names_the_key_when_a_real_folder_is_too_small(tmp_path):
    import pandas as pd

    from synreal.data.manifest import write_manifest
    from synreal.errors import DataError
    from synreal.stages.control import run

    rows = pd.DataFrame({"id": [f"a{i}" for i in range(6)], "path": "x", "relpath": "x",
                         "label": [0, 1] * 3, "split": "train", "width": 8, "height": 8})
    write_manifest(rows, tmp_path / "manifest.parquet")
    spec = {"params": {"part": "negative", "min_images": 4},
            "inputs": {"manifest": str(tmp_path / "manifest.parquet")}}
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match=r"^controls: the training split of .* has 6 images, "
                                        r"so its held-out half has 2, fewer than one batch of 4"):
        run(spec, tmp_path / "out")


def test_the_positive_control_replaces_every_image_by_class_independent_noise(tmp_path):
    import pandas as pd
    from PIL import Image

    from synreal.data.manifest import read_manifest, write_manifest
    from synreal.stages.control import run

    rows = pd.DataFrame({"id": [f"a{i}" for i in range(10)], "path": "x", "relpath": "x",
                         "label": [0, 1] * 5, "split": ["train"] * 8 + ["test"] * 2,
                         "width": 20, "height": 12, "sha256": "0", "constant": False})
    write_manifest(rows, tmp_path / "manifest.parquet")
    spec = {"params": {"part": "positive", "min_images": 2},
            "inputs": {"manifest": str(tmp_path / "manifest.parquet")}}
    (tmp_path / "out").mkdir()
    run(spec, tmp_path / "out")
    part = read_manifest(tmp_path / "out" / "manifest.parquet")
    assert len(part) == 4 and set(part["split"]) == {"train"}  # half B, never a test image
    assert sorted(part["label"]) == [0, 0, 1, 1]
    sizes = {Image.open(path).size for path in part["path"]}
    assert sizes == {(20, 12)}
    assert part["sha256"].nunique() == 4


def test_the_random_init_control_is_the_real_runs_start_at_each_seed_with_no_data(config):
    config["controls"] = {"random_init": True}
    plan = _replicated(config, 2, controls=False)
    main = plan.tables["main"]
    assert main.params["order"] == ["real", "synthetic", "control_random_init"]
    assert main.params["controls"] == {"random_init": "control_random_init", "trained": "real"}
    assert main.params["runs"]["control_random_init"]["labels"] == {
        "pretraining data": "control: random init"}
    assert plan.controls == {}  # it cuts no dataset
    real, untrained = plan.replicates["real"], plan.replicates["control_random_init"]
    for trained, start in zip(real, untrained, strict=True):
        assert start.upstream == {} and start.params["data"] == {"source": "random_init"}
        assert start.params["dino"] == trained.params["dino"]  # same recipe, same seed
        assert start.target in main.needs


def test_the_tables_that_compare_pretraining_read_the_main_tables_controls(config):
    """Issue 21: their Findings read the controls first, so they need the controls' artifacts;
    the data audits (synbench, cfg) do not rest on the frozen features the controls check."""
    config["controls"] = {"negative": True, "positive": True, "random_init": True}
    plan = _replicated(config, 2, controls=False)
    main = plan.tables["main"]
    controls = main.params["controls"]
    for name in ("mix_ratio", "mixdiff_views", "realtune", "pretrain_finetune"):
        table = plan.tables[name]
        assert table.params["controls"] == controls, name
        runs = table.params["control_runs"]
        assert set(runs) == {*controls.values(), "real"}, name
        for run in runs:  # the same artifacts the main table reads, every seed
            assert runs[run]["replicates"] == main.params["runs"][run]["replicates"]
        artifacts = {d for run in runs.values() for replicate in run["replicates"]
                     for k, d in replicate.items() if k != "seed"}
        assert artifacts <= set(table.needs), name
        assert runs["real"]["labels"] == {"pretraining data": "real"}  # what random init is of
    for name in ("synbench", "cfg"):
        assert "controls" not in plan.tables[name].params, name
    # the random-init control is compared with the run it is the start of (controls.run)
    config["pretrain"]["runs"]["real2"] = copy.deepcopy(config["pretrain"]["runs"]["real"])
    config["controls"]["run"] = "real2"
    plan = _replicated(config, 1, controls=False)
    for name in ("main", "mix_ratio"):
        table = plan.tables[name]
        assert table.params["controls"]["trained"] == "real2", name
        runs = table.params.get("control_runs", table.params["runs"])
        assert runs["real2"]["pretrain"] == plan.pretrain["real2"].out_dir, name
    without = _plan(yaml.safe_load(MICRO_TABLES.read_text()))
    assert "controls" not in without.tables["mix_ratio"].params


def test_the_cost_counts_every_seed_and_the_controls(monkeypatch):
    import synreal.cost as cost
    from synreal.doctor import read_throughput

    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    monkeypatch.setattr(cost, "_training_images", lambda config, base: {"afhq": 1000,
                                                                         "pets": 100})
    rows = read_throughput()

    def hours(**keys):
        config = validate_config({**copy.deepcopy(study), **keys}, check_paths=False)
        return cost.study_cost(config, REPO, rows)["pretrain"]

    one, _ = hours(replicates=1, controls={})
    per_run = one / 15  # 9 runs + 6 sweep scales other than afhq_syn's own
    three, note = hours(replicates={"seeds": 3, "runs": ["real", "synthetic"]}, controls={})
    assert three == pytest.approx(one + 4 * per_run) and "19 runs" in note
    full, note = hours()  # the study as written: 3 seeds and both controls
    assert full == pytest.approx(one + 4 * per_run + 3 * 3 * per_run / 2)
    assert note.startswith("28 runs x 100 epochs (3 seeds of 2 runs, 3 control runs")


@pytest.mark.parametrize(("path", "seeds"), [("config/config.yaml", 2),
                                             ("config/studies/afhq_pets.yaml", 3)])
def test_the_shipped_main_tables_have_their_seeds_and_all_controls(path, seeds):
    config = validate_config(yaml.safe_load((REPO / path).read_text()), check_paths=False)
    plan = build_plan(config)
    main = plan.tables["main"].params
    assert main["order"][2:] == ["control_reference", "control_negative", "control_positive",
                                 "control_random_init"]
    assert {len(row["replicates"]) for row in main["runs"].values()} == {seeds}


def test_mixdiff_views_single_source_rows_show_the_runs_own_crops(config):
    """The real-only and synthetic-only rows say 2 global + the run's own local crops (the
    micro study's 2, the demo's 2, the study's 8), not a fixed 2+8."""
    for locals_ in (2, 8):
        changed = copy.deepcopy(config)
        changed["pretrain"]["params"]["local_crops_number"] = locals_
        rows = _plan(changed).tables["mixdiff_views"].params["runs"]
        views = ("real views (global+local)", "synthetic views (global+local)")
        assert [rows["real"]["labels"][v] for v in views] == [f"2+{locals_}", "0"]
        assert [rows["synthetic"]["labels"][v] for v in views] == ["0", f"2+{locals_}"]


def test_mixdiff_views_quote_every_row_of_mixdiff_table_7():
    """The study's rows (8 local crops, as the paper's) carry Table 7's numbers, each split's
    own: real 1+2 / synthetic 1+6 is 77.43 there, real 1+6 / synthetic 1+2 is 77.96."""
    study = REPO / "config" / "studies" / "afhq_pets.yaml"
    config = validate_config(yaml.safe_load(study.read_text()), check_paths=False)
    rows = build_plan(config).tables["mixdiff_views"].params["runs"]
    paper = {(row["labels"]["real views (global+local)"],
              row["labels"]["synthetic views (global+local)"]): row["paper"]
             for row in rows.values()}
    assert paper == {("2+8", "0"): "66.8", ("0", "2+8"): "61.4", ("1+2", "1+6"): "77.4",
                     ("1+4", "1+4"): "77.5", ("1+6", "1+2"): "78.0"}


def test_mixdiff_views_synthetic_row_is_dino_on_the_mixdiff_runs_own_synthetic_set(config):
    """MixDiff's DINO+Syn row pretrains on the image variations its splits mix in, not on the
    study's text-to-image clone; without such a run the table names the run to add."""
    plan = _plan(config)
    row = plan.tables["mixdiff_views"].params["runs"]["synthetic"]
    assert row["pretrain"] == plan.pretrain["synthetic_var"].out_dir
    assert row["data"].startswith("afhq_var (generator toy-variations")
    changed = copy.deepcopy(config)
    del changed["pretrain"]["runs"]["synthetic_var"]
    with pytest.raises(ConfigError, match=r"^table mixdiff_views needs DINO on the MixDiff "
                                          r"runs' synthetic set alone .* pretrain\.runs\."
                                          r"synthetic_var: \{source: synthetic, synthetic: "
                                          r"afhq_var\}\.$"):
        _plan(changed)


def test_row_data_reads_the_resolved_run_and_names_no_sampler_for_toy_generators(config):
    """A mix without real_fraction is the schema's 50 %; toy generators draw no samples."""
    changed = copy.deepcopy(config)
    del changed["pretrain"]["runs"]["mix50"]["real_fraction"]
    rows = _plan(changed).tables["mix_ratio"].params["runs"]
    assert rows["mix50"]["data"].startswith("50 % afhq (real) + 50 % afhq_syn (generator toy")
    assert "sampling steps" not in rows["mix50"]["data"]


def test_mix_ratio_ends_are_mains_runs_wherever_the_config_lists_them(config):
    """A synthetic-only run on another set (MixDiff's synthetic_var) listed first does not
    stand in for the synthetic run at 0 % real."""
    changed = copy.deepcopy(config)
    runs = changed["pretrain"]["runs"]
    changed["pretrain"]["runs"] = {"synthetic_var": runs.pop("synthetic_var"), **runs}
    assert _plan(changed).tables["mix_ratio"].params["order"] == ["synthetic", "mix50", "real"]


@pytest.mark.parametrize(("replicates", "same"), [(None, True), ({"seeds": [5, 6]}, False)])
def test_cfg_names_mains_synthetic_run_only_where_it_is_the_same_run(config, replicates, same):
    changed = copy.deepcopy(config)
    if replicates:
        changed["replicates"] = {**replicates, "runs": ["real", "synthetic"]}
    params = _plan(changed).tables["cfg"].params
    assert params["main_synthetic_scale"] == (7.5 if same else None)


def test_the_datasets_table_lists_every_set_the_study_makes_and_how(config):
    """The guidance sweep's other scales and the control sets are datasets too, named as the
    audits name them, in the plan's order; a real set or a control set says how it was made
    (a generated set's settings are read from its artifact when the table is built)."""
    config["controls"] = {"negative": True, "positive": True}
    plan = _plan(config)
    table = plan.tables["datasets"]
    made = table.params["made"]
    sweep = [f"afhq_syn@cfg{float(scale)}" for scale in config["cfg_sweep"]["scales"]
             if float(scale) != 7.5]
    assert set(sweep) <= set(table.params["synthetic"]) <= set(sweep) | set(
        config["generators"]) | {f"control {part}" for part in plan.controls}
    for name in sweep:
        assert table.params["synthetic"][name] == plan.cfg[float(name.split("cfg")[1])][0].out_dir
    assert made["afhq"].startswith("the toy world's renderer in the afhq layout: object scale")
    assert made["control reference"] == "half A of afhq's training split (real)"
    assert made["control positive"].endswith("replaced by class-independent colour noise")
    assert table.params["synthetic"]["control negative"] == plan.controls["negative"].out_dir
    assert set(table.needs) >= {job.out_dir for job in plan.controls.values()}
    assert table.params["order"] == [*config["datasets"], *config["generators"], *sweep,
                                     "control reference", "control negative",
                                     "control positive"]
    if "synbench" in plan.tables:  # one name for a sweep scale's set in every table
        assert set(sweep) <= set(plan.tables["synbench"].params["audits"])


def test_a_folder_dataset_says_where_it_was_ingested_from():
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    plan = build_plan(validate_config(study, check_paths=False))
    table = plan.tables["datasets"]
    assert table.params["made"]["afhq"] == (
        f"{study['datasets']['afhq']['path']} ingested as released (unreadable files: "
        f"{plan.config['datasets']['afhq']['on_corrupt']})")
    assert [name for name in table.params["order"] if "@cfg" in name] == [
        f"afhq_syn@cfg{scale}" for scale in (3.0, 4.0, 5.0, 6.0, 7.0, 8.0)]
    # without a model_id each backend records its own usual weights, not SDXL's
    from synreal.generate.params import DEFAULT_MODEL_IDS, GenerateParams

    assert plan.generators["afhq_var"].params["model_id"] == DEFAULT_MODEL_IDS[
        "sd-image-variations"]
    assert GenerateParams(backend="sd-image-variations").model_id == (
        "lambdalabs/sd-image-variations-diffusers")
    assert GenerateParams(backend="sd").model_id == DEFAULT_MODEL_IDS["sd"]


def test_a_supervised_fine_tuning_is_probed_on_fixed_features(config):
    """With ``train_on: images`` every checkpoint whose linear top-1 a table reports gets the
    GPU probe on images; a supervised fine-tuning's (its table reads the tuned classifier)
    keeps the seconds-long probe on fixed features, with the same settings otherwise."""
    config["evaluation"]["probe"] = {"train_on": "images", "protocols": ["dino_linear"]}
    plan = _plan(config)
    assert {jobs["probe"].stage for jobs in plan.evaluations.values()} == {"probe_images"}
    for (_, mode, _), jobs in plan.tuned_evaluations.items():
        probe = jobs["probe"]
        assert probe.stage == ("probe_images" if mode == "ssl" else "probe")
        if mode == "supervised":
            assert probe.params["train_on"] == "features"
            assert probe.params["protocols"] == ["dino_linear"]
    assert any(mode == "supervised" for _, mode, _ in plan.tuned_evaluations)
