"""Stage ``ingest``: a dataset folder in its official layout -> ``manifest.parquet``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.cpus import job_threads
from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class IngestParams:
    """Parameters of the ``ingest`` stage."""

    format: str = doc("Dataset layout: afhq, oxford_pet or imagefolder.")
    on_corrupt: str = doc("fail: stop at the first unreadable image; skip: drop and report it.",
                          default="fail")


def run(spec: dict, out_dir: Path) -> None:
    """Scan, decode and hash every image; write the manifest and a problems report."""
    from synreal.data.formats import scan
    from synreal.data.manifest import MANIFEST_FILE, build_manifest, manifest_hash, write_manifest

    params = parse_params(IngestParams, spec["params"], "ingest params")
    root = Path(spec["inputs"]["root"])
    records = scan(params.format, root)
    workers = min(8, job_threads())  # decoding threads: the job's budget, as Snakemake gave it
    manifest, problems = build_manifest(root, records, params.on_corrupt, workers)
    write_manifest(manifest, out_dir / MANIFEST_FILE, {
        "synreal.manifest_hash": manifest_hash(manifest),
        "synreal.format": params.format,
        "synreal.root": str(root.resolve()),
    })
    problems.to_csv(out_dir / "problems.csv", index=False)
    for row in problems.itertuples():
        print(f"skipped {root / row.relpath}: {row.reason}")
    for relpath in manifest.loc[manifest["constant"], "relpath"]:
        print(f"kept {root / relpath}: constant image (all pixels equal), flagged 'constant'")


STAGE = register(Stage("ingest", 1, "Decode and hash a real dataset into manifest.parquet.",
                       IngestParams, run))
