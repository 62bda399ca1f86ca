"""A study's whole plan: its content-keyed stage jobs, then the paper tables that read them.

The entry point the Snakefile and the tests call. The jobs (``synreal.plan_jobs``) and the
tables (``synreal.plan_tables``) are built in that order and depend one way: tables read
jobs, jobs know nothing of tables.
"""

from __future__ import annotations

from synreal.plan_jobs import RESULTS, Job, Plan, TableJob, build_jobs
from synreal.plan_tables import add_tables

__all__ = ["RESULTS", "Job", "Plan", "TableJob", "build_plan"]


def build_plan(config: dict) -> Plan:
    """Resolve a validated config (defaults filled) into its jobs and tables."""
    plan = build_jobs(config)
    add_tables(plan)
    return plan
