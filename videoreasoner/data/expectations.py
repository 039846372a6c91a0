"""The validate stage's great_expectations suite, written in code, and the GX run that checks a frame.

The frame holds one row per record: `record` (1-based position in the input), the required schema fields
(text, or None when missing) and one `check_<name>` column per semantic check from
videoreasoner/data/record_checks.py, holding "field: problem" text or None. GX asserts the schema columns directly
(not null, unique ids, enums) and that every problem column is null, so each check appears in the GX
result and in the Data Docs with the ids of the offending records.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import videoreasoner.core.telemetry  # noqa: F401  (GX analytics off before great_expectations is imported)
import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig

from videoreasoner.core.schema import PROBLEM_TYPES, REQUIRED_FIELDS, SPLITS

SUITE_NAME = "records"
SITE_NAME = "validation"
INDEX_COLUMNS = ["record", "id"]  # how an offending row is named in GX results
# Semantic checks and what they assert; each has a problem column (see problem_column) that must be null.
PROBLEM_CHECKS = {
    "fields": "no unknown fields; scalar fields have their schema types",
    "question": "the question is non-empty text",
    "options": "multiple_choice has 2-26 distinct option texts; other types have no options",
    "answer": "the answer parses for its problem type (option letter among the options, number, text, span, box)",
    "times": "spans satisfy 0 <= start < end <= duration; times lie within the duration / span",
    "boxes": "boxes are normalised to [0, 1] with x1 < x2 and y1 < y2",
    "video": "the video file exists and decodes; duration (within tolerance, from presentation times), fps and "
             "display size agree; a rotated file is rejected when params say so",
    "video_split": "no video appears in two splits",
}


def problem_column(check: str) -> str:
    """The frame column holding the problems found by one check (not `problem_*`: `problem_type` is a field)."""
    return f"check_{check}"


CHECK_COLUMNS = frozenset(problem_column(name) for name in PROBLEM_CHECKS)


@dataclass
class Outcome:
    """One expectation's result, reduced to what the stage reports (JSON-ready)."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    element_count: int
    description: str
    examples: list[dict[str, Any]] = field(default_factory=list)  # first offending rows: record, id, value
    detail: str | None = None  # table-level expectations: the observed value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def fields(self) -> list[str]:
        """The record fields this outcome is about (a check's problem texts start with "field: ")."""
        if self.column not in CHECK_COLUMNS:
            return [self.column or "records"]
        names = [str(ex["value"]).split(":", 1)[0] for ex in self.examples if ex.get("value")]
        return list(dict.fromkeys(names)) or [self.column.removeprefix("check_")]

    def message(self) -> str:
        """e.g. "expect_column_values_to_be_null(check_answer) failed for 2 of 10 records, field answer:
        'q3' (record 3): answer: letter 'E' is not among the 4 options (A-D); ..." """
        where = f"({self.column})" if self.column else ""
        head = f"{self.expectation}{where} failed"
        if self.detail is not None:
            return f"{head}, field {', '.join(self.fields())}: {self.detail}"
        shown = "; ".join(
            f"{ex['id']!r} (record {ex['record']})"
            + (f": {ex['value']}" if self.column in CHECK_COLUMNS else f": {self.column}={ex['value']!r}")
            for ex in self.examples
        )
        return (f"{head} for {self.unexpected_count} of {self.element_count} records, "
                f"field {', '.join(self.fields())}: first offending ids: {shown}")


def build_expectations(required_splits: list[str]) -> list[gx.expectations.Expectation]:
    """The suite: row count, required fields present, unique ids, enums, required splits, problem columns."""
    ex = gx.expectations
    suite = [ex.ExpectTableRowCountToBeBetween(min_value=1, description="the input holds at least one record")]
    suite += [ex.ExpectColumnValuesToNotBeNull(column=name) for name in REQUIRED_FIELDS]
    suite += [
        ex.ExpectColumnValuesToBeUnique(column="id"),
        ex.ExpectColumnValuesToBeInSet(column="problem_type", value_set=list(PROBLEM_TYPES)),
        ex.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
    ]
    if required_splits:
        suite.append(ex.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(required_splits)))
    suite += [ex.ExpectColumnValuesToBeNull(column=problem_column(name), description=f"Per record: {text}.")
              for name, text in PROBLEM_CHECKS.items()]
    return suite


def _context(docs_dir: Path | None):
    """A fresh in-memory context (cheap; no results of earlier runs) with one Data Docs site at docs_dir
    (none when docs_dir is None)."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for name in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(name)  # the default site writes to a stray temporary directory
    if docs_dir is None:
        return context
    context.add_data_docs_site(site_name=SITE_NAME, site_config={
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
    })
    return context


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so outcomes serialise as JSON."""
    return value.item() if hasattr(value, "item") else value


def _error(exception_info: dict) -> str | None:
    """The message of an exception GX caught while computing an expectation (flat or per-metric form)."""
    candidates = [exception_info, *(v for v in exception_info.values() if isinstance(v, dict))]
    return next((c.get("exception_message") for c in candidates if c.get("raised_exception")), None)


def _outcome(result, total: int) -> Outcome:
    config, info = result.expectation_config, result.result or {}
    column = config.kwargs.get("column")
    examples = [{"record": _plain(row.get("record")), "id": _plain(row.get("id")), "value": _plain(row.get(column))}
                for row in info.get("partial_unexpected_index_list") or []]
    detail = None
    if not result.success and "partial_unexpected_index_list" not in info:
        missing, error = info.get("partial_missing_list"), _error(result.exception_info or {})
        detail = (f"required values missing: {missing}" if missing
                  else f"GX error: {error}" if error
                  else f"observed {_plain(info.get('observed_value'))!r}")
    unexpected = int(info.get("unexpected_count") or 0)
    return Outcome(expectation=config.type, column=column, success=bool(result.success),
                   unexpected_count=unexpected, element_count=total,
                   description=config.description or "", examples=examples,
                   detail=detail)


def run_suite(frame, docs_dir: Path | None, required_splits: list[str], max_examples: int = 5) -> list[Outcome]:
    """Validate `frame` (see the module docstring) with the suite; build the Data Docs under docs_dir
    (skipped when None)."""
    context = _context(docs_dir)
    asset = context.data_sources.add_pandas("records").add_dataframe_asset("records")
    batch = asset.add_batch_definition_whole_dataframe("all records")
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=build_expectations(required_splits)))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="validate",
        validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])] if docs_dir else [],
        result_format={"result_format": "SUMMARY", "unexpected_index_column_names": INDEX_COLUMNS,
                       "partial_unexpected_count": max_examples},
    ))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = result.run_results.values()
    return [_outcome(r, len(frame)) for r in validation.results]
