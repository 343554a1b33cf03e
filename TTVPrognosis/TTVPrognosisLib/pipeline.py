"""File in, results out: the steps the CLI, the batch and the demo share.

Reading is kept here (not in the measuring code) so that measuring stays a pure function of arrays and
the same checks (reference image geometry) run on every path that starts from files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .formats.io import ImageVolume, read_image, read_image_geometry, read_segmentation
from .formats.segments import (
    LabelVolume,
    names_matching,
    patterns_matching,
    require_patterns_match,
    require_segments_named,
)
from .geometry import reference_grid_warnings
from .measure.role_checks import plain_label_map_of_lits_values, read_as_lits
from .measure.volumetry import Measurement, checked_roles, liver_union, measure

if TYPE_CHECKING:  # imported where they are used: measuring needs neither comparing nor reports (start-up time)
    from .prognosis.scores import ClinicalInputs
    from .report.patient_report import ReportOptions
    from .response.comparison import Comparison

RIGID = "rigid"  # response.registration.RIGID, kept here so that measuring does not import registration


def load_segmentation(segmentation_path: str | os.PathLike, image_path: str | os.PathLike | None = None,
                      series: Sequence[str] = ()) -> LabelVolume:
    """Read a segmentation; with its CT, also check that both belong to the same scan (warnings kept)."""
    return load_time_point(segmentation_path, image_path, series=series)[0]


def load_time_point(segmentation_path: str | os.PathLike, image_path: str | os.PathLike | None = None,
                    need_image: bool = True, segmentation_reader: Callable | None = None,
                    image_reader: Callable | None = None, series: Sequence[str] = ()
                    ) -> tuple[LabelVolume, ImageVolume | None]:
    """Read a segmentation and, when given, its CT (checked to belong to the same scan; warnings kept).

    With ``need_image=False`` only the CT's header is read (enough for the check) and None is returned for
    it, unless a custom ``image_reader`` is given (Slicer's readers read whole volumes). The readers default
    to :func:`.io.read_segmentation` and :func:`.io.read_image`; the default ones get the CT as the reference
    of an RTSTRUCT and ``series``, the DICOM series UIDs to choose in folders holding several.
    """
    if segmentation_reader is None:
        volume = read_segmentation(segmentation_path, image_path, series)
    else:
        volume = segmentation_reader(segmentation_path)
    if image_path is None:
        return volume, None
    image = None
    if need_image or image_reader is not None:
        image = image_reader(image_path) if image_reader is not None else read_image(image_path, series)
        geometry = image.geometry
    else:
        geometry = read_image_geometry(image_path, series)
    volume.warnings.extend(reference_grid_warnings(volume.geometry, geometry, f"Segmentation '{segmentation_path}'",
                                                   f"image '{image_path}'"))
    return volume, (image if need_image else None)


def liver_mask(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
               lesion: Sequence[str] = ()) -> ImageVolume | None:
    """Union of the liver segments as a boolean image; None without any (or when they are empty).

    The image is the segmentation's grid cropped to the liver's bounding box (its geometry says where), so
    a whole-abdomen grid is scanned once and never copied whole.
    """
    kept = liver_union(volume, exclude=exclude, liver=liver, lesion=lesion)
    return None if kept is None else kept.as_image(volume.source)


def measure_file(segmentation_path: str | os.PathLike, image_path: str | os.PathLike | None = None,
                 exclude: Sequence[str] = (), liver: Sequence[str] = (), keep_labels: bool = False,
                 series: Sequence[str] = (), lesion: Sequence[str] = ()) -> Measurement:
    """Read a segmentation (and optionally its CT) and measure it; ``lesion`` names (or wildcard patterns) the
    lesion segments, each of which must match a segment."""
    volume = load_segmentation(segmentation_path, image_path, series)
    require_patterns_match([volume], lesion, "--lesion-segment")
    return measure(volume, exclude=exclude, liver=liver, keep_labels=keep_labels, lesion=lesion)


def segment_options_found(volumes: Sequence[LabelVolume], exclude: Sequence[str], liver: Sequence[str],
                          lesion: Sequence[str], strict: bool = True) -> list[str]:
    """Check the segment options against the time points: with ``strict``, a name (or pattern) that matches no
    segment of any of ``volumes`` is an error (a typo must not change the TTV); otherwise (a cohort, where
    the options are shared by many patients) it is a warning, returned."""
    if strict:
        require_segments_named(volumes, exclude, "--exclude-segment")
        require_segments_named(volumes, liver, "--liver-segment")
        require_patterns_match(volumes, lesion, "--lesion-segment")
        return []
    warnings = []
    for names, option, matching in ((exclude, "excluded", names_matching), (liver, "liver", names_matching),
                                    (lesion, "lesion", patterns_matching)):
        missing = [name for name in names if not any(matching(volume, [name]) for volume in volumes)]
        if missing:
            warnings.append(f"No segment matches the {option} segment name(s) {', '.join(repr(n) for n in missing)}; "
                            f"nothing was {'left out' if option == 'excluded' else 'taken as ' + option} for it.")
    return warnings


def compare_volumes(baseline: LabelVolume, followup: LabelVolume, exclude: Sequence[str] = (),
                    liver: Sequence[str] = (), keep_labels: bool = False, baseline_image: ImageVolume | None = None,
                    followup_image: ImageVolume | None = None, register: bool = True,
                    registration_mode: str = RIGID, lesion: Sequence[str] = (),
                    strict_names: bool = True) -> Comparison:
    """Measure both time points, register the follow-up to the baseline, match lesions, and compare.

    A segment named in ``exclude``/``liver``/``lesion`` may be missing at one time point (a lesion that
    disappeared) but must exist at one of them (``strict_names=False``: else a warning, as in a cohort).
    Registration uses the CTs when both are given (helped by the liver
    segments), else the liver segments of both time points, else none (with a warning); ``register=False``
    takes the scans as already aligned. ``keep_labels`` keeps the lesion label maps in the measurements.
    """
    from .response.comparison import compare
    from .response.registration import register_followup

    name_warnings = segment_options_found([baseline, followup], exclude, liver, lesion, strict=strict_names)
    roles = [(names_matching(volume, exclude), names_matching(volume, liver)) for volume in (baseline, followup)]
    roles, convention_warnings = _same_label_map_convention((baseline, followup), roles, lesion)
    name_warnings += convention_warnings
    measurements = [measure(volume, exclude=excluded, liver=livers, keep_labels=True, keep_liver_mask=register,
                            lesion=lesion)
                    for volume, (excluded, livers) in zip((baseline, followup), roles)]
    livers = [measurement.liver_mask.as_image(measurement.source) if measurement.liver_mask is not None else None
              for measurement in measurements]
    registration = register_followup(baseline_image, followup_image, livers[0], livers[1], mode=registration_mode,
                                     enabled=register)
    comparison = compare(*measurements, registration=registration)
    comparison.warnings[:0] = name_warnings
    for measurement in measurements:
        measurement.liver_mask = None
        if not keep_labels:
            measurement.lesion_labels = None
    return comparison


def _same_label_map_convention(volumes: Sequence[LabelVolume], roles: list[tuple[list[str], list[str]]],
                               lesion: Sequence[str]) -> tuple[list[tuple[list[str], list[str]]], list[str]]:
    """When one time point is a LiTS-convention label map (1 = liver, 2 = tumour), read the other the same way
    if it is a plain label map of those values too: a follow-up holding only the liver (label 1) after a
    complete response is then TTV 0, not a 700 mL "lesion"."""
    if lesion:
        return roles, []
    checked = [checked_roles(volume, exclude=excluded, liver=livers)[0]
               for volume, (excluded, livers) in zip(volumes, roles)]
    if not any(read_as_lits(volume) for volume in checked):
        return roles, []
    updated, warnings = [], []
    for volume, checked_volume, (excluded, livers) in zip(volumes, checked, roles):
        label_one = any(segment.label_value == 1 for segment in volume.segments)
        if not read_as_lits(checked_volume) and plain_label_map_of_lits_values(volume) and label_one \
                and not excluded and not livers:
            livers = ["1"]
            warnings.append(f"{volume.source or 'A time point'}: label 1 is taken as the liver, as at the other time "
                            f"point (LiTS / MSD / nnU-Net convention); say otherwise with --lesion-segment.")
        updated.append((excluded, livers))
    return updated, warnings


def compare_files(baseline_path: str | os.PathLike, followup_path: str | os.PathLike,
                  baseline_image: str | os.PathLike | None = None, followup_image: str | os.PathLike | None = None,
                  exclude: Sequence[str] = (), liver: Sequence[str] = (), register: bool = True,
                  registration_mode: str = RIGID, series: Sequence[str] = (), lesion: Sequence[str] = ()) -> Comparison:
    """Read both time points (and their CTs when given) and compare them (see :func:`compare_volumes`)."""
    baseline, baseline_ct = load_time_point(baseline_path, baseline_image, series=series)
    followup, followup_ct = load_time_point(followup_path, followup_image, series=series)
    return compare_volumes(baseline, followup, exclude=exclude, liver=liver, baseline_image=baseline_ct,
                           followup_image=followup_ct, register=register, registration_mode=registration_mode,
                           lesion=lesion)


def report_inputs(baseline_path: str | os.PathLike, followup_path: str | os.PathLike | None = None,
                  baseline_image: str | os.PathLike | None = None, followup_image: str | os.PathLike | None = None,
                  exclude: Sequence[str] = (), liver: Sequence[str] = (), register: bool = True,
                  registration_mode: str = RIGID, series: Sequence[str] = (), lesion: Sequence[str] = ()
                  ) -> tuple[Measurement | Comparison, list[tuple[LabelVolume, ImageVolume | None]]]:
    """What a patient report needs: the result with its lesion label maps, and each time point's files as read.

    One time point is measured as :func:`measure_file` does; two are compared exactly as :func:`compare_files`
    does (same segment options, ``series`` and ``lesion`` patterns).
    """
    time_points = [load_time_point(baseline_path, baseline_image, series=series)]
    if followup_path is None:
        volume = time_points[0][0]
        require_segments_named([volume], exclude, "--exclude-segment")
        require_segments_named([volume], liver, "--liver-segment")
        require_patterns_match([volume], lesion, "--lesion-segment")
        result = measure(volume, exclude=names_matching(volume, exclude), liver=names_matching(volume, liver),
                         keep_labels=True, lesion=lesion)
        return result, time_points
    time_points.append(load_time_point(followup_path, followup_image, series=series))
    (baseline, baseline_ct), (followup, followup_ct) = time_points
    result = compare_volumes(baseline, followup, exclude=exclude, liver=liver, keep_labels=True,
                             baseline_image=baseline_ct, followup_image=followup_ct, register=register,
                             registration_mode=registration_mode, lesion=lesion)
    return result, time_points


def write_patient_report(result: Measurement | Comparison, time_points: list[tuple[LabelVolume, ImageVolume | None]],
                         input_paths: dict[str, str | os.PathLike | None], pdf_path: str | os.PathLike | None,
                         html_path: str | os.PathLike | None, settings: dict[str, str],
                         options: ReportOptions | None = None, prognosis: dict | None = None,
                         include_identifiers: bool = False, date: str | None = None,
                         clinical: ClinicalInputs | None = None) -> list:
    """Draw and write one patient's report (PDF and/or HTML) from a result of :func:`report_inputs`.

    ``input_paths`` (role -> path) are listed with their SHA-256; ``settings`` as given. ``prognosis``
    defaults to the section ``compare`` shows for the baseline (and follow-up) TTV. With ``clinical`` the
    Fong and GAME scores are computed as ``compare`` computes them (on the follow-up when there is one; what
    is not given makes a score not computable) and replace ``options.scores``.
    """
    from .prognosis.section import prognosis_section
    from .report.patient_report import ReportOptions, TimePointData, report_content, write_report
    from .report.provenance import provenance, report_date
    from .response.comparison import Comparison

    options = options or ReportOptions()
    comparison = result if isinstance(result, Comparison) else None
    baseline = comparison.baseline if comparison else result
    if clinical is not None:
        from .report.documents import timed_scores

        timed = timed_scores(baseline, comparison.followup if comparison else None, clinical)
        scan = "follow-up" if timed.time_point == "followup" else "baseline"
        options.scores = [timed.fong, timed.game]
        name = os.path.basename(timed.scan.rstrip("/\\")) or f"the {scan} segmentation"  # no full path shown
        options.scores_note = f"Computed on the {scan} scan ({name}). {timed.reason}"
    if prognosis is None and baseline.ttv_ml > 0:
        prognosis = prognosis_section(baseline.ttv_ml, comparison.followup.ttv_ml if comparison else None,
                                      model=options.model)
    images = [path for role, path in input_paths.items() if "image" in role.lower() or "CT" in role]
    record = provenance(input_paths, settings, report_date(date), include_identifiers, tuple(images))
    data = [TimePointData(volume, image) for volume, image in time_points]
    content = report_content(result, prognosis, record, data[0], data[1] if len(data) > 1 else None, options)
    return write_report(content, pdf_path, html_path)
