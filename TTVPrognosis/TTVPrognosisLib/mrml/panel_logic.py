"""The logic facade's MRML work for the panel and the Python console, without any widget.

``TTVPrognosisLogic`` in TTVPrognosis.py is this class plus Slicer's ScriptedLoadableModuleLogic (which needs
the GUI); keeping the work here keeps the module file a thin panel. Methods take the panel's parameter node
and use the application's scene.
"""

from __future__ import annotations

import slicer

from ..errors import InputError
from ..report.html import prognosis_html, summary_html
from . import nodes as mrml
from . import review as mrml_review
from . import workflow as mrml_workflow

BASELINE, FOLLOWUP = "Baseline", "Follow-up"


class PanelLogic:
    """Measuring, comparing and lesion review on the nodes a parameter node names."""

    @staticmethod
    def excludedSegmentNames(text: str) -> list:
        """Comma-separated segment names as typed by the user."""
        return [name.strip() for name in (text or "").split(",") if name.strip()]

    # --- measuring and comparing -----------------------------------------------------------------------

    def measure(self, segmentationNode, volumeNode=None, excluded=(), lesions=()):
        """Measure one segmentation node (it is not modified); see TTVPrognosisLib.volumetry. ``lesions``: names
        or wildcard patterns of the lesion segments (the others are left out), as ``--lesion-segment``."""
        return mrml.measure_segmentation_node(segmentationNode, volumeNode, exclude=list(excluded),
                                              lesion=list(lesions))

    def computeTTV(self, parameterNode):
        """Measure, compare (registration, lesion matching, RECIST, TBS), predict, score; fill the result nodes.

        Returns a TTVPrognosisLib.mrml.workflow.Outcome (result, prognosis, scores, warnings).
        """
        outcome = mrml_workflow.compute_outcome(
            parameterNode.baselineSegmentation, parameterNode.baselineVolume, parameterNode.followupSegmentation,
            parameterNode.followupVolume, exclude=self.excludedSegmentNames(parameterNode.excludedSegments),
            register=parameterNode.registerFollowup, clinical=mrml_workflow.clinical_inputs_from_panel(
                parameterNode.nodePositivePrimary, parameterNode.diseaseFreeIntervalMonths, parameterNode.ceaNgMl,
                parameterNode.krasMutated, parameterNode.extrahepaticDisease))
        mrml_workflow.write_outcome(outcome, self.resultNodes(parameterNode), slicer.mrmlScene)
        return outcome

    def resultNodes(self, parameterNode):
        """The result table and chart nodes, created once and kept in the parameter node."""
        def node(attribute, name, className="vtkMRMLTableNode"):
            if not getattr(parameterNode, attribute):
                setattr(parameterNode, attribute, slicer.mrmlScene.AddNewNodeByClass(className, name))
            return getattr(parameterNode, attribute)

        return mrml_workflow.ResultNodes(
            summary=node("summaryTable", "TTV summary"), lesions=node("lesionTable", "TTV lesions"),
            response=node("responseTable", "TTV response"), matched_lesions=node("matchedLesionTable",
                                                                                "TTV matched lesions"),
            survival=node("survivalTable", "TTV survival"), survival_curves=node("survivalCurveTable",
                                                                                "TTV survival curves"),
            survival_chart=node("survivalChart", "TTV survival chart", "vtkMRMLPlotChartNode"),
            scores=node("scoreTable", "TTV clinical scores"))

    @staticmethod
    def summaryHtml(outcome) -> str:
        return summary_html(outcome.result, outcome.warnings)

    @staticmethod
    def prognosisHtml(outcome) -> str:
        return prognosis_html(outcome.prognosis, getattr(outcome, "scores_note", ""))

    @staticmethod
    def modelCardPath() -> str:
        from TTVPrognosisLib.prognosis.model import MODELS_DIR

        return str(MODELS_DIR / "MODEL_CARD.md")

    # --- lesion review ---------------------------------------------------------------------------------

    def segmentEditorNode(self, parameterNode):
        """The module's own segment editor node (not the Segment Editor module's), kept in the scene."""
        if not parameterNode.segmentEditorNode:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", "TTVPrognosis segment editor")
            node.SetHideFromEditors(True)
            # Lesions lie inside the liver: painting one must not cut it out of the liver segment (as the
            # editor's default, overwrite all segments, would), which would change the liver volume and mask.
            node.SetOverwriteMode(node.OverwriteNone)
            parameterNode.segmentEditorNode = node
        return parameterNode.segmentEditorNode

    def lesionPointsNode(self, parameterNode):
        """Markups node that receives the clicks of Add lesion (points are removed once used)."""
        if not parameterNode.lesionPoints:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "TTVPrognosis lesion clicks")
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetPointLabelsVisibility(False)
            parameterNode.lesionPoints = node
        return parameterNode.lesionPoints

    def reviewNodes(self, parameterNode):
        """(CT, segmentation) of the time point under review."""
        if parameterNode.reviewTimePoint == FOLLOWUP:
            return parameterNode.followupVolume, parameterNode.followupSegmentation
        return parameterNode.baselineVolume, parameterNode.baselineSegmentation

    def createReviewSegmentation(self, parameterNode):
        """A new empty segmentation on the reviewed CT, selected for that time point."""
        volumeNode, _ = self.reviewNodes(parameterNode)
        if volumeNode is None:
            raise InputError(f"Select the {parameterNode.reviewTimePoint.lower()} CT first.")
        node = mrml_review.new_segmentation_for(volumeNode, f"{parameterNode.reviewTimePoint} lesions")
        if parameterNode.reviewTimePoint == FOLLOWUP:
            parameterNode.followupSegmentation = node
        else:
            parameterNode.baselineSegmentation = node
        return node

    def addLesionAtPoint(self, parameterNode, pointRas):
        """Segment the lesion at a clicked point as a new 'Lesion N' segment; returns (name, result)."""
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        if volumeNode is None:
            raise InputError(f"Select the {parameterNode.reviewTimePoint.lower()} CT first.")
        if segmentationNode is None:
            segmentationNode = self.createReviewSegmentation(parameterNode)
        segmentId, result = mrml_review.add_lesion_at_points_to_node(segmentationNode, volumeNode, [list(pointRas)])
        return segmentationNode.GetSegmentation().GetSegment(segmentId).GetName(), result

    def lesionRows(self, parameterNode) -> list:
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        return mrml_review.lesion_rows(segmentationNode, volumeNode,
                                       self.excludedSegmentNames(parameterNode.excludedSegments))

    def setLesionVerified(self, parameterNode, segmentId: str, verified: bool) -> None:
        _, segmentationNode = self.reviewNodes(parameterNode)
        mrml_review.set_segment_verified(segmentationNode, segmentId, verified)

    def splitLesion(self, parameterNode, segmentId: str) -> list:
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        return mrml_review.split_segment_into_islands(segmentationNode, segmentId, volumeNode)

    def deleteLesion(self, parameterNode, segmentId: str) -> None:
        _, segmentationNode = self.reviewNodes(parameterNode)
        segmentationNode.RemoveSegment(segmentId)


def read_segmentation_with_slicer(path):
    """A segmentation file read by Slicer's own reader (the batch's reader inside Slicer) as a LabelVolume;
    DICOM (series folders, SEG, RTSTRUCT), which Slicer reads only through its DICOM database, by this
    package's checked readers (pydicom is bundled with Slicer)."""
    from pathlib import Path

    from ..formats.dicom_input import is_dicom_file
    from ..formats.io import read_segmentation

    if Path(path).is_dir() or is_dicom_file(Path(path)):
        return read_segmentation(path)
    try:
        node = slicer.util.loadSegmentation(str(path))
    except Exception as error:
        raise InputError(f"Slicer could not read the segmentation '{path}': {error}") from error
    try:
        volume = mrml.label_volume_from_segmentation_node(node)
        volume.source = str(path)
        return volume
    finally:
        slicer.mrmlScene.RemoveNode(node)
