"""Batch a cohort from Slicer's Python console: the library's runner with Slicer's segmentation reader.

The panel module adds the progress dialog (Qt); this part needs only MRML, so the same tables and columns as
``ttvprognosis batch`` end up in a table node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..cohort.manifest import read_manifest
from ..cohort.runner import run_cohort
from . import results as mrml_results
from .panel_logic import read_segmentation_with_slicer


def process_cohort(scene, manifest, output, lesions_output=None, resume: bool = False, overwrite: bool = False,
                   table_node=None, progress: Callable | None = None, should_cancel: Callable[[], bool] | None = None):
    """Run the manifest's patients one after another; returns (CohortResult, table node with the results).

    ``should_cancel`` is asked between patients: finished patients are kept in ``output`` (run again with
    ``resume=True``) and the table node shows them; nothing else in the scene is changed.
    """
    cohort = read_manifest(manifest, outputs=[path for path in (output, lesions_output) if path])
    for problem in cohort.warnings + cohort.file_problems:
        logging.warning(problem)
    result = run_cohort(cohort, output, lesions_output, workers=1, resume=resume, overwrite=overwrite,
                        progress=progress, should_cancel=should_cancel, read_segmentation=read_segmentation_with_slicer)
    table_node = table_node or scene.AddNewNodeByClass("vtkMRMLTableNode", "TTVPrognosis cohort")
    mrml_results.fill_table(table_node, result.columns, result.typed_rows())
    return result, table_node


def dialog_progress(dialog, process_events: Callable[[], object]) -> tuple[Callable, Callable[[], bool]]:
    """(progress, should_cancel) for :func:`process_cohort` from a Slicer progress dialog (None: not shown)."""
    def progress(done: int, total: int, patient_id: str) -> None:
        if dialog is not None:
            dialog.maximum, dialog.value, dialog.labelText = total, done, f"{done} of {total} patients"
        process_events()

    return progress, lambda: bool(dialog is not None and dialog.wasCanceled)
