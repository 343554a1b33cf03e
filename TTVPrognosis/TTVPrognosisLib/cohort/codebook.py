"""The codebook written beside every cohort table: what each column holds and in which unit.

``<output stem>.codebook.csv`` (columns ``column,description,unit``) lists every column of the table it sits
beside, in table order, so a researcher can read ``results.csv`` and ``lesions.csv`` without this tool's
documentation. Manifest columns are described as copied from the manifest (the clinical inputs of the scores
say what they feed). A column this module cannot describe is listed with an empty description; a test makes
sure no column of today's tables is.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..formats.io import _atomic_write
from ..prognosis.model import POPULATION, STUDY_DOI

CODEBOOK_SUFFIX = ".codebook.csv"
FROM_MANIFEST = "copied from the manifest"

# Fields of one scan's measurement (``baseline_...``, ``followup_...``; ``measure --json``).
MEASUREMENT = {
    "ttv_ml": ("total tumour volume: voxels in the union of lesion segments x voxel volume", "mL"),
    "lesion_count": ("number of lesions (26-connected components of the lesion union)", "count"),
    "voxel_volume_ml": ("volume of one voxel of the segmentation grid (as read, not rounded)", "mL"),
    "liver_volume_ml": ("volume of the union of liver segments; empty without a liver segment", "mL"),
    "largest_diameter_mm": ("largest 3D diameter of any lesion (distance between voxel centres)", "mm"),
    "largest_axial_diameter_mm": ("largest longest axial diameter of any lesion (RECIST plane)", "mm"),
    "spacing_mm": ("voxel spacing along i; j; k (as read)", "mm"),
    "slice_thickness_mm": ("spacing between axial slices (as read)", "mm"),
    "axial_axis": ("image axis closest to the patient's superior-inferior axis (i, j or k)", ""),
    "source": ("segmentation file read", "path"),
    "warnings": ("warnings about this scan, joined with '; '", ""),
}
# One lesion (``lesions.csv``).
LESION = {
    "patient_id": ("patient identifier from the manifest", ""),
    "time_point": ("scan the lesion is on: baseline or followup", ""),
    "lesion_id": ("lesion number on its scan; 1 is the largest", ""),
    "voxel_count": ("voxels in the lesion", "count"),
    "volume_ml": ("lesion volume", "mL"),
    "centroid_r_mm": ("lesion centroid, R (right) coordinate in the scan's RAS frame", "mm"),
    "centroid_a_mm": ("lesion centroid, A (anterior) coordinate in the scan's RAS frame", "mm"),
    "centroid_s_mm": ("lesion centroid, S (superior) coordinate in the scan's RAS frame", "mm"),
    "max_diameter_mm": ("largest 3D diameter (distance between voxel centres)", "mm"),
    "longest_axial_diameter_mm": ("longest diameter within one axial slice (RECIST plane)", "mm"),
    "segments": ("segments the lesion is made of, joined with '; '", ""),
    "matching_status": ("what became of the lesion between the scans: matched, merged, split, merged and split, "
                        "new or disappeared; empty without a follow-up", ""),
    "recist_role": ("RECIST 1.1 role: target, non-target or new (a follow-up lesion takes its baseline lesion's "
                    "role); empty without a follow-up", ""),
}
SURVIVAL = re.compile(r"^prognosis_overall_survival_(\d+)m(_ci95_low|_ci95_high)?$")
TARGET = re.compile(r"^recist_target_(\d)_(lesion_id|baseline_mm|followup_mm|followup_measured_mm)$")
TARGET_FIELDS = {
    "lesion_id": ("baseline lesion number of RECIST target {n}; empty when there are fewer targets", ""),
    "baseline_mm": ("RECIST target {n}: longest axial diameter at baseline", "mm"),
    "followup_mm": ("RECIST target {n}: value entered in the follow-up sum (0 when gone or recorded with a "
                    "coalesced lesion)", "mm"),
    "followup_measured_mm": ("RECIST target {n}: longest axial diameter measured at follow-up (sum over "
                             "fragments)", "mm"),
}
SCORE = ("computed on the scan in scores_time_point; empty when an input is unknown (see "
         "{name}_not_computable_reason)")
RESULTS = {
    "status": ("ok, or failed (see error)", ""),
    "error": ("what went wrong for this patient and what to do; empty when ok", ""),
    "absolute_change_ml": ("TTV change: follow-up TTV - baseline TTV (the study's variable)", "mL"),
    "relative_change_percent": ("TTV change / baseline TTV x 100; empty when the baseline TTV is 0", "%"),
    "new_lesion_count": ("follow-up lesions matched to no baseline lesion", "count"),
    "disappeared_lesion_count": ("baseline lesions matched to no follow-up lesion", "count"),
    "merged_lesion_count": ("follow-up lesions formed by two or more baseline lesions coalescing", "count"),
    "split_lesion_count": ("baseline lesions that fragmented into two or more follow-up lesions", "count"),
    "recist_response": ("RECIST 1.1 overall response: CR, PR, SD, PD, non-CR/non-PD or NE", ""),
    "recist_target_response": ("RECIST 1.1 response of the target lesions", ""),
    "recist_non_target_response": ("RECIST 1.1 response of the non-target lesions", ""),
    "recist_measurable_disease": ("true when a baseline lesion was measurable (a target exists)", "true/false"),
    "recist_new_lesion_ids": ("identifiers (follow-up lesion numbers) of new lesions, joined with '; '; the "
                              "count is new_lesion_count", ""),
    "recist_baseline_sum_mm": ("sum of the target lesions' longest axial diameters at baseline", "mm"),
    "recist_followup_sum_mm": ("sum of the target lesions' diameters at follow-up", "mm"),
    "recist_nadir_sum_mm": ("smallest sum on study (the baseline sum with two scans)", "mm"),
    "recist_absolute_change_mm": ("follow-up sum - baseline sum", "mm"),
    "recist_percent_change": ("(follow-up sum - baseline sum) / baseline sum x 100", "%"),
    "recist_measurable_threshold_mm": ("smallest measurable longest axial diameter (10 mm, or 2 x slice "
                                       "spacing above 5 mm)", "mm"),
    "recist_slice_thickness_mm": ("baseline axial slice spacing used for measurability", "mm"),
    "recist_reasons": ("why RECIST gave this response, joined with '; '", ""),
    "recist_notes": ("how RECIST 1.1 was applied, joined with '; '", ""),
    "tbs_baseline": ("Tumour Burden Score at baseline: sqrt((largest axial diameter, cm)^2 + lesions^2)", "score"),
    "tbs_followup": ("Tumour Burden Score at follow-up", "score"),
    "tbs_change": ("follow-up TBS - baseline TBS", "score"),
    "tbs_study_cut_off": (f"TBS cut-off of the TTV study (doi:{STUDY_DOI}), shown beside Sasaki's zones", "score"),
    "tbs_size_used": ("which diameter TBS uses", ""),
    "lesion_matching_registered": ("true when lesions were matched after registering the follow-up", "true/false"),
    "lesion_matching_used_overlap": ("true when lesion overlap (not centroids alone) was used", "true/false"),
    "lesion_matching_max_distance_mm": ("largest centroid distance at which lesions are paired", "mm"),
    "lesion_matching_warnings": ("warnings of lesion matching, joined with '; '", ""),
    "registration_status": ("registered, skipped, unavailable or failed", ""),
    "registration_method": ("what was registered: CTs, liver masks, or none", ""),
    "registration_mode": ("rigid or affine", ""),
    "registration_rotation_deg": ("rotation of the follow-up-to-baseline transform", "degrees"),
    "registration_translation_mm": ("translation R; A; S of the follow-up-to-baseline transform", "mm"),
    "registration_metric_value": ("final value of the registration metric", ""),
    "registration_problems": ("why a registration was rejected, joined with '; '", ""),
    "registration_warnings": ("registration warnings, joined with '; '", ""),
    "warnings": ("warnings of the comparison, joined with '; '", ""),
    "prognosis_model_id": ("survival model used (see MODEL_CARD.md)", ""),
    "prognosis_time_origin": ("what overall survival is counted from", ""),
    "prognosis_baseline_ttv_ml": ("baseline TTV the survival estimate is for", "mL"),
    "prognosis_warnings": ("warnings of the survival estimate (e.g. extrapolation), joined with '; '", ""),
    "prognosis_errors": ("why a part of the prognosis is not given, joined with '; '", ""),
    "prognosis_ttv_change_baseline_ttv_ml": ("baseline TTV of the described change", "mL"),
    "prognosis_ttv_change_follow_up_ttv_ml": ("follow-up TTV of the described change", "mL"),
    "prognosis_ttv_change_change_ml": ("absolute TTV change (follow-up - baseline)", "mL"),
    "prognosis_ttv_change_relative_change_percent": ("relative TTV change", "%"),
    "prognosis_ttv_change_direction": ("decrease, increase or no change", ""),
    "prognosis_ttv_change_position_cairo5": ("absolute TTV change below, within or above the CAIRO5 cohort's IQR "
                                             f"(-81 to -6 mL; doi:{STUDY_DOI}, Table 1)", ""),
    "prognosis_ttv_change_position_validation": ("absolute TTV change below, within or above the validation "
                                                 f"cohort's IQR (-37 to -3 mL; doi:{STUDY_DOI}, Table 1)", ""),
    "fong_score": ("Fong clinical risk score (0-5; Ann Surg 1999, doi:10.1097/00000658-199909000-00004), "
                   + SCORE.format(name="fong"), "points"),
    "fong_risk_group": ("Fong risk group: low risk (0-2) or high risk (3-5); empty when not computable", ""),
    "fong_not_computable_reason": ("why fong_score is empty (the unknown inputs); empty when computed", ""),
    "game_score": ("GAME score (0-7; Br J Surg 2018, doi:10.1002/bjs.10838), " + SCORE.format(name="game"),
                   "points"),
    "game_risk_group": ("GAME risk group: low (0-1), medium (2-3) or high (4-7); empty when not computable", ""),
    "game_not_computable_reason": ("why game_score is empty (the unknown inputs); empty when computed", ""),
    "scores_time_point": ("scan Fong and GAME were computed on: followup (after induction therapy, when given) "
                          "or baseline", ""),
}
TBS_DETAIL = {"score": ("Tumour Burden Score", "score"), "zone": ("Sasaki zone 1, 2 or 3", ""),
              "zone_label": ("Sasaki zone with its TBS range", ""),
              "at_or_above_study_cut_off": (f"true when TBS >= 14.3 (doi:{STUDY_DOI})", "true/false"),
              "lesion_count": ("lesions counted for TBS", "count"),
              "largest_diameter_mm": ("largest longest axial diameter used for TBS", "mm")}
CLINICAL = {
    "node_positive_primary": "clinical input of Fong and GAME: node-positive primary (yes/no/1/0; empty: unknown)",
    "disease_free_interval_months": "clinical input of Fong: months from the primary to the liver metastases",
    "cea_ng_ml": "clinical input of Fong and GAME: serum CEA before liver treatment (ng/mL)",
    "ras_mutated": "clinical input of GAME: RAS-mutated tumour (yes/no/1/0; empty: unknown)",
    "extrahepatic_disease": "clinical input of GAME: extrahepatic disease (yes/no/1/0; empty: unknown)",
}
SCAN_LABELS = {"baseline": "Baseline scan", "followup": "Follow-up scan"}


def describe_column(column: str, manifest_columns: Sequence[str] = ()) -> tuple[str, str]:
    """(description, unit) of a results or lesion-table column; ("", "") when it is not known."""
    if column in manifest_columns and column != "patient_id":
        extra = CLINICAL.get(column)
        return (f"{FROM_MANIFEST} ({extra})" if extra else FROM_MANIFEST), ""
    for table in (RESULTS, LESION):
        if column in table:
            return table[column]
    survival = SURVIVAL.match(column)
    if survival:
        months, band = survival.groups()
        what = {None: "expected overall survival probability",
                "_ci95_low": "lower end of the pointwise 95 % band of overall survival",
                "_ci95_high": "upper end of the pointwise 95 % band of overall survival"}[band]
        return (f"{what} at {months} months from the baseline TTV (model in prognosis_model_id). "
                f"{POPULATION}", "probability (0-1)")
    target = TARGET.match(column)
    if target:
        description, unit = TARGET_FIELDS[target.group(2)]
        return description.format(n=target.group(1)), unit
    scan, _, field_name = column.partition("_")
    if scan in SCAN_LABELS and field_name in MEASUREMENT:
        description, unit = MEASUREMENT[field_name]
        return f"{SCAN_LABELS[scan]}: {description}", unit
    return _describe_tbs_or_registration(column)


def _describe_tbs_or_registration(column: str) -> tuple[str, str]:
    for scan, label in SCAN_LABELS.items():
        prefix = f"tbs_{scan}_"
        if column.startswith(prefix):
            field_name = column[len(prefix):].replace("detail_", "", 1)
            if field_name in TBS_DETAIL:
                description, unit = TBS_DETAIL[field_name]
                return f"{label}: {description}", unit
    if column.startswith("registration_diagnostics_"):
        name = column[len("registration_diagnostics_"):]
        unit = "mm" if name.endswith("_mm") else ""
        return (f"registration diagnostic '{name}' (compare --json: registration.diagnostics; depends on the "
                f"method)", unit)
    return "", ""


def codebook_path(table: str | os.PathLike) -> Path:
    """``results.csv`` -> ``results.codebook.csv`` (beside the table)."""
    path = Path(table)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem + CODEBOOK_SUFFIX)


def codebook_rows(columns: Sequence[str], manifest_columns: Sequence[str] = ()) -> list[tuple[str, str, str]]:
    return [(column, *describe_column(column, manifest_columns)) for column in columns]


def write_codebook(table: str | os.PathLike, columns: Sequence[str], manifest_columns: Sequence[str] = (),
                   encoding: str = "utf-8", delimiter: str = ",") -> Path:
    """Write ``<table stem>.codebook.csv`` for these columns (atomically); returns its path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(("column", "description", "unit"))
    writer.writerows(codebook_rows(columns, manifest_columns))
    text = buffer.getvalue()
    path = codebook_path(table)
    _atomic_write(path, lambda temporary: _write_text(temporary, text, encoding))
    return path


def _write_text(path: Path, text: str, encoding: str) -> None:
    """Text exactly as given (no newline translation; ``Path.write_text(newline=)`` needs Python 3.10)."""
    with open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
