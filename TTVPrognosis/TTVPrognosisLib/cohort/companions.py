"""The files written beside a run's tables: codebooks, provenance and (``--excel``) spreadsheet copies.

Kept apart from the runner so that running patients and documenting the tables change independently.
"""

from __future__ import annotations

from collections.abc import Mapping

from .codebook import write_codebook
from .manifest import PATH_COLUMNS, Manifest
from .provenance import provenance_document, write_provenance
from .spreadsheet import write_excel_copy


def write_companions(result, manifest: Manifest, settings: Mapping, excel: bool = False,
                     checksums: Mapping[str, dict] | None = None) -> list:
    """Write the codebooks and provenance of ``result`` (a :class:`.runner.CohortResult`); returns the paths.

    ``checksums``: input records the workers already made (path -> size and sha256); the other inputs
    (patients kept from an earlier run, failed ones) are hashed here.
    """
    written = [write_codebook(result.output, result.columns, manifest.columns)]
    tables = {"results": str(result.output), "results_codebook": str(written[0])}
    if result.lesions_output is not None:
        written.append(write_codebook(result.lesions_output, result.lesion_columns, manifest.columns))
        tables.update(lesions=str(result.lesions_output), lesions_codebook=str(written[-1]))
    if excel:
        written.append(write_excel_copy(result.output, result.columns, result.rows, manifest.delimiter))
        tables["results_excel"] = str(written[-1])
        if result.lesions_output is not None:
            written.append(write_excel_copy(result.lesions_output, result.lesion_columns, result.lesion_rows,
                                            manifest.delimiter))
            tables["lesions_excel"] = str(written[-1])
    inputs = [(entry.patient_id, column, entry.paths[column]) for entry in manifest.entries
              for column in PATH_COLUMNS if column in entry.paths]
    counts = {"total": result.total, "succeeded": result.succeeded, "failed": result.failed}
    document = provenance_document(manifest.path, inputs, {**settings, "excel": excel}, tables, counts,
                                   checksums or {})
    written.append(write_provenance(result.output, document))
    return written
