"""Which inputs the results on screen belong to, kept with the result tables so that it survives a saved scene.

Compute TTV records, as attributes of the summary table node (saved with the scene, like the tables), the
inputs it used and the summary and prognosis texts it showed. The panel compares the recorded inputs with
the current ones at every parameter change and after edits of the input segmentations, and shows the old
results under an "out of date" note until Compute TTV is pressed again; reopening a scene shows them again
from the saved tables, with the same check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

INPUTS_ATTRIBUTE = "TTVPrognosis.ResultInputs"
SUMMARY_ATTRIBUTE = "TTVPrognosis.SummaryHtml"
PROGNOSIS_ATTRIBUTE = "TTVPrognosis.PrognosisHtml"
EDITED_ATTRIBUTE = "TTVPrognosis.InputsEditedSinceResults"
NODE_INPUTS = ("baselineVolume", "baselineSegmentation", "followupVolume", "followupSegmentation")
VALUE_INPUTS = ("excludedSegments", "registerFollowup", "nodePositivePrimary", "diseaseFreeIntervalMonths", "ceaNgMl",
                "krasMutated", "extrahepaticDisease")
OUT_OF_DATE_NOTE = ("<p style='color:#b00000'><b>Out of date:</b> the inputs changed after these results were "
                    "computed. Press Compute TTV to update them.</p>")
NO_RESULTS_SUMMARY = "Select a baseline segmentation and press Compute TTV."
NO_RESULTS_PROGNOSIS = "Press Compute TTV to see the expected overall survival."


def inputs_signature(parameter_node) -> str:
    """The inputs that decide the results (node IDs and values), as text."""
    nodes = {name: (getattr(parameter_node, name).GetID() if getattr(parameter_node, name) is not None else "")
             for name in NODE_INPUTS}
    values = {name: getattr(parameter_node, name) for name in VALUE_INPUTS}
    return json.dumps({**nodes, **values}, sort_keys=True)


def record_results(summary_table_node, signature: str, summary_html: str, prognosis_html: str) -> None:
    summary_table_node.SetAttribute(INPUTS_ATTRIBUTE, signature)
    summary_table_node.SetAttribute(SUMMARY_ATTRIBUTE, summary_html)
    summary_table_node.SetAttribute(PROGNOSIS_ATTRIBUTE, prognosis_html)
    summary_table_node.RemoveAttribute(EDITED_ATTRIBUTE)


def mark_inputs_edited(summary_table_node) -> None:
    """An input segmentation was edited after Compute TTV (its node ID is unchanged, its voxels are not)."""
    if summary_table_node is not None and summary_table_node.GetAttribute(INPUTS_ATTRIBUTE):
        summary_table_node.SetAttribute(EDITED_ATTRIBUTE, "1")


@dataclass(frozen=True)
class ShownResults:
    summary_html: str
    prognosis_html: str
    up_to_date: bool
    computed: bool


def shown_results(parameter_node) -> ShownResults:
    """The texts to show for the parameter node's results, with the out-of-date note when they are stale."""
    table = parameter_node.summaryTable if parameter_node is not None else None
    recorded = table.GetAttribute(INPUTS_ATTRIBUTE) if table is not None else None
    if not recorded:
        return ShownResults(NO_RESULTS_SUMMARY, NO_RESULTS_PROGNOSIS, up_to_date=True, computed=False)
    summary = table.GetAttribute(SUMMARY_ATTRIBUTE) or ""
    prognosis = table.GetAttribute(PROGNOSIS_ATTRIBUTE) or ""
    up_to_date = recorded == inputs_signature(parameter_node) and not table.GetAttribute(EDITED_ATTRIBUTE)
    if not up_to_date:
        summary, prognosis = OUT_OF_DATE_NOTE + summary, OUT_OF_DATE_NOTE + prognosis
    return ShownResults(summary, prognosis, up_to_date, computed=True)
