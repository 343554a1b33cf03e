"""Plain-text tables and JSON for people and programs (CLI output, batch logs)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from .prognosis import OverallSurvivalPrediction, SurvivalModel, prognosis_section
from .response import Comparison
from .volumetry import Measurement


def to_json(document: dict) -> str:
    """One JSON document; NaN is never written (undefined values are null)."""
    return json.dumps(_finite(document), indent=2, allow_nan=False)


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *[line(row) for row in rows]])


def format_measurement(result: Measurement) -> str:
    """The measure command's human-readable output."""
    spacing = " x ".join(f"{s:.3g}" for s in result.spacing_mm)
    lines = [
        f"Segmentation: {result.source}",
        f"Voxel spacing: {spacing} mm (axial slices along {result.axial_axis}, {result.slice_thickness_mm:.3g} mm "
        f"apart); voxel volume {result.voxel_volume_ml * 1000:.4g} mm3",
        f"Total tumour volume (TTV): {result.ttv_ml:.2f} mL in {result.lesion_count} lesion(s)",
        f"Liver volume: {_number(result.liver_volume_ml, 1, ' mL').replace('n/a', 'no liver segment')}",
        f"Largest lesion: {_number(result.largest_diameter_mm, 1, ' mm')} (longest axial diameter "
        f"{_number(result.largest_axial_diameter_mm, 1, ' mm')})",
    ]
    if result.lesions:
        rows = [[str(lesion.lesion_id), f"{lesion.volume_ml:.2f}", f"{lesion.max_diameter_mm:.1f}",
                 f"{lesion.longest_axial_diameter_mm:.1f}",
                 "(" + ", ".join(f"{v:.1f}" for v in lesion.centroid_ras) + ")", ", ".join(lesion.segments)]
                for lesion in result.lesions]
        lines += ["", "Lesions (26-connected, largest first)",
                  table(["#", "Volume mL", "Max diam mm", "Axial diam mm", "Centroid RAS mm", "Segments"], rows)]
    if result.segments:
        rows = [[segment.name, segment.role, f"{segment.volume_ml:.2f}", "yes" if segment.verified else "no"]
                for segment in result.segments]
        lines += ["", "Segments", table(["Name", "Role", "Volume mL", "Verified"], rows)]
    return "\n".join(lines)


def format_comparison(comparison: Comparison) -> str:
    """The compare command's human-readable output."""
    baseline, followup = comparison.baseline, comparison.followup
    relative = comparison.relative_change_percent
    change = f"{comparison.absolute_change_ml:+.2f}" + (f" ({relative:+.1f} %)" if relative is not None else "")
    rows = [
        ["TTV (mL)", f"{baseline.ttv_ml:.2f}", f"{followup.ttv_ml:.2f}", change],
        ["Lesions", str(baseline.lesion_count), str(followup.lesion_count),
         f"{followup.lesion_count - baseline.lesion_count:+d}"],
        ["Largest diameter (mm)", _number(baseline.largest_diameter_mm), _number(followup.largest_diameter_mm), ""],
        ["Longest axial diameter (mm)", _number(baseline.largest_axial_diameter_mm),
         _number(followup.largest_axial_diameter_mm), ""],
        ["Liver volume (mL)", _number(baseline.liver_volume_ml), _number(followup.liver_volume_ml), ""],
    ]
    return "\n".join([f"Baseline:  {baseline.source}", f"Follow-up: {followup.source}", "",
                      table(["", "Baseline", "Follow-up", "Change"], rows)])


def comparison_document(comparison: Comparison, model: SurvivalModel | None = None) -> dict:
    """The full ``compare --json`` document: the comparison plus the prognosis from the baseline TTV."""
    document = comparison.to_dict()
    document["prognosis"] = prognosis_section(comparison.baseline.ttv_ml, comparison.followup.ttv_ml, model=model)
    return document


def format_prognosis(section: dict) -> str:
    """Survival table of a prognosis section, with its model, time origin and limits."""
    lines = [f"Prognosis (model {section['model_id']}; {section['intended_use']})"]
    if section["overall_survival"]:
        rows = [[f"{point['months']:.0f}", f"{point['probability'] * 100:.0f} %",
                 f"{point['ci95'][0] * 100:.0f}-{point['ci95'][1] * 100:.0f} %"]
                for point in section["overall_survival"]]
        lines += [f"Overall survival from {section['time_origin']} at baseline TTV {section['baseline_ttv_ml']:.1f} mL",
                  table(["Months", "Survival", "95 % band"], rows)]
    lines += [f"Not available: {error}" for error in section.get("errors", [])]
    return "\n".join(lines)


def format_prediction(prediction: OverallSurvivalPrediction) -> str:
    """The predict command's table."""
    section = prediction.to_dict()
    rows = [[f"{point['months']:.0f}", f"{point['probability'] * 100:.1f} %",
             f"{point['ci95'][0] * 100:.1f}-{point['ci95'][1] * 100:.1f} %"] for point in section["overall_survival"]]
    return "\n".join([f"Model: {prediction.model_id}",
                      f"Overall survival from {prediction.time_origin}, baseline TTV {prediction.baseline_ttv_ml:g} mL",
                      table(["Months", "Survival", "95 % band"], rows),
                      "Research use only: not for clinical decisions."])
