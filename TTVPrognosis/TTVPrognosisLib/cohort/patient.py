"""One patient's work: read, measure, compare, predict, flatten; run in a worker process or on Dask.

It is its own module so that a worker needs only this (top-level functions and dataclasses that pickle),
and so that the manifest check can ask for the result columns (:func:`_template`) without the runner.

Each patient is one job (:func:`process_patient`, a top-level function so process pools and Dask can ship
it): read the segmentations, check each against its CT when one is given (from the file header alone,
unless both CTs of a patient with a follow-up are given: then they are read and used for registration, as
``compare`` does), measure, compare, add the prognosis, flatten (:mod:`.tables`). A patient without
a follow-up gets the baseline measurement and prognosis only. A baseline without lesion voxels is an error
(a baseline scan of a patient with liver metastases has lesions: the file is probably the wrong one); an
empty follow-up is valid (complete response) and only warned about.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import InputError, os_error_message
from .tables import STATUS_FAILED, STATUS_OK, FlatDocument, flatten_document


@dataclass
class PatientJob:
    """Everything one worker needs for one patient (picklable when the readers are top-level functions)."""

    patient_id: str
    baseline_segmentation: str
    followup_segmentation: str | None = None
    baseline_image: str | None = None
    followup_image: str | None = None
    exclude: tuple[str, ...] = ()
    liver: tuple[str, ...] = ()
    register: bool = True
    registration_mode: str = "rigid"
    read_segmentation: Callable | None = None  # path -> LabelVolume; default io.read_segmentation
    read_image: Callable | None = None  # path -> ImageVolume; default io.read_image (only the header when
    #                                     the voxels are not needed)
    clinical: object | None = None  # prognosis.scores.ClinicalInputs of the Fong/GAME scores; None: all unknown
    series: tuple[str, ...] = ()  # DICOM series UIDs chosen in folders holding several (manifest dicom_series)
    lesion: tuple[str, ...] = ()  # names or wildcard patterns of the lesion segments (--lesion-segment)
    report_dir: str | None = None  # write this patient's report (PDF) there; None: no report, no extra work


@dataclass
class PatientOutcome:
    """A patient's flattened results (``row``, lesion rows) or the reason it failed (``error``)."""

    patient_id: str
    status: str
    error: str = ""
    row: dict[str, str] = field(default_factory=dict)
    lesions: list[dict[str, str]] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)
    seconds: float = 0.0
    checksums: dict[str, dict] = field(default_factory=dict)  # input path -> size and sha256 (provenance)


_MODEL = None


def _survival_model():
    """The embedded survival model, loaded once per process."""
    global _MODEL
    if _MODEL is None:
        from ..prognosis.model import load_model

        _MODEL = load_model()
    return _MODEL


def _load_time_point(job: PatientJob, label: str, segmentation: str, image: str | None, need_image: bool):
    """:func:`.pipeline.load_time_point` with the job's readers; errors say which time point they concern."""
    from ..pipeline import load_time_point

    try:
        return load_time_point(segmentation, image or None, need_image, job.read_segmentation, job.read_image,
                               series=job.series)
    except InputError as error:
        raise InputError(f"{label}: {error}") from error


def patient_document(job: PatientJob) -> dict:
    """One patient's ``compare --json`` document (``baseline`` and ``prognosis`` only without a follow-up).

    The same steps as ``ttvprognosis compare``: both CTs, when given, are read and used for registration.
    """
    from ..formats.segments import names_matching
    from ..measure.volumetry import measure
    from ..pipeline import compare_volumes, segment_options_found
    from ..prognosis.section import prognosis_section
    from ..report.documents import comparison_document, scores_section

    with_followup = bool(job.followup_segmentation)
    reporting = bool(job.report_dir)  # a report shows the CTs and the lesion label maps
    both_images = with_followup and bool(job.baseline_image) and bool(job.followup_image) and job.register
    baseline, baseline_ct = _load_time_point(job, "Baseline", job.baseline_segmentation, job.baseline_image,
                                             both_images or reporting)
    if not with_followup:
        name_warnings = segment_options_found([baseline], job.exclude, job.liver, job.lesion, strict=False)
        measurement = measure(baseline, exclude=names_matching(baseline, job.exclude),
                              liver=names_matching(baseline, job.liver), lesion=job.lesion, keep_labels=reporting)
        measurement.warnings[:0] = name_warnings
        _require_baseline_lesions(measurement, job.baseline_segmentation)
        document = {"baseline": measurement.to_dict(),
                    "prognosis": prognosis_section(measurement.ttv_ml, None, model=_survival_model()),
                    "clinical_scores": scores_section(measurement, None, job.clinical)}
        if reporting:
            _write_report(job, measurement, document["prognosis"], [(baseline, baseline_ct)])
        return document
    followup, followup_ct = _load_time_point(job, "Follow-up", job.followup_segmentation, job.followup_image,
                                             both_images or reporting)
    comparison = compare_volumes(baseline, followup, exclude=job.exclude, liver=job.liver,
                                 baseline_image=baseline_ct if both_images else None,
                                 followup_image=followup_ct if both_images else None, register=job.register,
                                 registration_mode=job.registration_mode, lesion=job.lesion, strict_names=False,
                                 keep_labels=reporting)
    _require_baseline_lesions(comparison.baseline, job.baseline_segmentation)
    document = comparison_document(comparison, model=_survival_model(), clinical=job.clinical)
    if reporting:
        _write_report(job, comparison, document["prognosis"], [(baseline, baseline_ct), (followup, followup_ct)])
    return document


def report_file_name(patient_id: str) -> str:
    """``<patient id>.pdf`` with characters a file name cannot hold replaced by ``_``."""
    import re

    return (re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id).strip("._") or "patient") + ".pdf"


def _write_report(job: PatientJob, result, prognosis: dict, time_points: list) -> None:
    """The patient's report as ``ttvprognosis report`` writes it, named after the patient id."""
    from pathlib import Path

    from ..pipeline import write_patient_report
    from ..prognosis.scores import ClinicalInputs
    from ..report.patient_report import ReportOptions

    settings = {"Registration": job.registration_mode if job.register else "off",
                "Excluded segments": ", ".join(job.exclude) or "none",
                "Liver segments named": ", ".join(job.liver) or "none (liver-named segments)",
                "Lesion segments named": ", ".join(job.lesion) or "none (all other segments)",
                "Written by": "ttvprognosis batch"}
    if job.series:
        settings["DICOM series chosen"] = ", ".join(job.series)
    paths = {"Baseline segmentation": job.baseline_segmentation, "Baseline CT": job.baseline_image or None,
             "Follow-up segmentation": job.followup_segmentation or None, "Follow-up CT": job.followup_image or None}
    options = ReportOptions(exclude=job.exclude, liver=job.liver, case_label=job.patient_id, model=_survival_model(),
                            lesion=job.lesion)
    try:
        write_patient_report(result, time_points, paths, Path(job.report_dir) / report_file_name(job.patient_id), None,
                             settings, options, prognosis=prognosis, clinical=job.clinical or ClinicalInputs())
    except InputError as error:
        raise InputError(f"Report: {error}") from error


def _require_baseline_lesions(measurement, path: str) -> None:
    if measurement.ttv_ml > 0:
        return
    lesion_segments = [segment.name for segment in measurement.segments if segment.role == "lesion"]
    what = ("has no lesion segments" if not lesion_segments
            else f"has lesion segments ({', '.join(lesion_segments)}) but none holds a voxel")
    raise InputError(f"Baseline: the segmentation '{path}' {what}, so TTV is 0 mL. A baseline scan of a patient "
                     f"with liver metastases has lesions: check that the right file is listed and that it was "
                     f"saved after segmenting (liver, anatomy and excluded segments are not lesions).")


def process_patient(job: PatientJob) -> PatientOutcome:
    """Run one patient; any failure becomes an outcome with a readable ``error`` instead of an exception."""
    start = time.perf_counter()
    try:
        flat = flatten_document(patient_document(job), job.patient_id)
    except InputError as error:
        return PatientOutcome(job.patient_id, STATUS_FAILED, str(error), seconds=time.perf_counter() - start)
    except OSError as error:  # the system refused: an unsearchable folder, a lost network share...
        return PatientOutcome(job.patient_id, STATUS_FAILED, os_error_message(error),
                              seconds=time.perf_counter() - start)
    except MemoryError:
        return PatientOutcome(job.patient_id, STATUS_FAILED, "Out of memory while processing this patient; run "
                              "it with fewer workers (--workers 1).", seconds=time.perf_counter() - start)
    except Exception as error:  # a bug must not stop the other patients
        return PatientOutcome(job.patient_id, STATUS_FAILED, f"Internal error ({type(error).__name__}): {error}. "
                              f"Please report this with the files of this patient.",
                              seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return PatientOutcome(job.patient_id, STATUS_OK, "", flat.row, flat.lesions, flat.containers, seconds,
                          _checksums(job))


def _checksums(job: PatientJob) -> dict[str, dict]:
    """Size and sha256 of the job's input files, for the provenance file: hashed here, in the worker, while
    the files are fresh in the page cache and in parallel with the other patients."""
    from .provenance import input_record

    paths = (job.baseline_segmentation, job.followup_segmentation, job.baseline_image, job.followup_image)
    return {path: input_record(path) for path in paths if path}


@lru_cache(maxsize=1)
def _template() -> FlatDocument:
    """Columns of a full comparison of a tiny synthetic case: the canonical column order, and reserved names."""
    import numpy as np

    from ..formats.demo_data import axis_aligned_geometry, ellipsoid_mask
    from ..formats.segments import LabelVolume, Segment
    from ..pipeline import compare_volumes
    from ..report.documents import comparison_document

    try:
        geometry = axis_aligned_geometry((12, 16, 16), (2.0, 2.0, 2.0))
        liver = ellipsoid_mask(geometry, (0.0, 0.0, 0.0), (15.0, 15.0, 11.0)).astype(np.uint8)
        lesion = ellipsoid_mask(geometry, (2.0, 2.0, 0.0), (6.0, 6.0, 6.0)).astype(np.uint8)
        volume = LabelVolume([liver, lesion], geometry, [Segment("Liver", "Liver", 0, 1),
                                                         Segment("Lesion_1", "Lesion 1", 1, 1)], "template")
        return flatten_document(comparison_document(compare_volumes(volume, volume), model=_survival_model()))
    except Exception:  # the order then follows the first rows; never stop a batch over a column order
        return FlatDocument()
