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
from . import result_state
from . import review as mrml_review
from . import workflow as mrml_workflow
from .lesion_region import add_lesion_in_region
from .lesion_table import LesionRowCache

BASELINE, FOLLOWUP = "Baseline", "Follow-up"
SEGMENT_EDITOR_EFFECTS = ["Paint", "Draw", "Erase", "Scissors", "Islands", "Smoothing", "Threshold", "Grow from seeds",
                          "Local Threshold"]
LESION_TABLE_HEADERS = ["Lesion", "Volume (mL)", "Axial diameter (mm)", "Verified"]
# Edits of the reviewed segmentation (in the embedded Segment Editor too) that change the lesion table.
SEGMENTATION_EDIT_EVENTS = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                            slicer.vtkSegmentation.SegmentModified, slicer.vtkSegmentation.SourceRepresentationModified)
RESULT_TABLES = (("summaryTable", "TTV summary"), ("lesionTable", "TTV lesions"), ("responseTable", "TTV response"),
                 ("matchedLesionTable", "TTV matched lesions"), ("survivalTable", "TTV survival"),
                 ("survivalCurveTable", "TTV survival curves"), ("scoreTable", "TTV clinical scores"))


class CancelledError(Exception):
    """The user cancelled a long operation; nothing in the scene was changed."""


def first_ct_volume(scene):
    """The first scalar volume that is not a labelmap (a labelmap is no CT, although it is a scalar volume)."""
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if not node.IsA("vtkMRMLLabelMapVolumeNode"):
            return node
    return None


def _require_ct(volume_node, what: str) -> None:
    if volume_node is not None and volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"The {what} '{volume_node.GetName()}' is a labelmap, not a CT; select the CT volume.")


class PanelLogic:
    """Measuring, comparing and lesion review on the nodes a parameter node names."""

    _lesionRowCache = None
    lastOutcome = None  # (inputs signature, Outcome) of the last Compute TTV

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

    def computeTTV(self, parameterNode, step=None):
        """Measure, compare (registration, lesion matching, RECIST, TBS), predict, score; fill the result nodes.

        Returns a TTVPrognosisLib.mrml.workflow.Outcome (result, prognosis, scores, warnings). ``step(text)`` is
        called before each stage and may raise CancelledError: the scene is only changed after the last stage, so a
        cancelled or failed computation leaves the previous results as they were. The result nodes and the
        parameter node are then written in one modification (observers see one ModifiedEvent, not eight).
        """
        signature = result_state.inputs_signature(parameterNode)
        outcome = self.computeOutcome(parameterNode, step)
        if step is not None:
            step("Writing the result tables")
        with slicer.util.NodeModify(parameterNode):
            nodes = self.resultNodes(parameterNode)
            modifying = [(node, node.StartModify()) for node in vars(nodes).values()]
            try:
                mrml_workflow.write_outcome(outcome, nodes, slicer.mrmlScene)
                result_state.record_results(nodes.summary, signature, self.summaryHtml(outcome),
                                            self.prognosisHtml(outcome))
            finally:
                for node, wasModifying in reversed(modifying):
                    node.EndModify(wasModifying)
        self.lastOutcome = (signature, outcome)  # for Save report; the panel forgets it when the scene closes
        return outcome

    def computeOutcome(self, parameterNode, step=None):
        """The Outcome of the parameter node's inputs, without writing any node (Save report after reopening)."""
        _require_ct(parameterNode.baselineVolume, "baseline CT")
        _require_ct(parameterNode.followupVolume, "follow-up CT")
        return mrml_workflow.compute_outcome(
            parameterNode.baselineSegmentation, parameterNode.baselineVolume, parameterNode.followupSegmentation,
            parameterNode.followupVolume, exclude=self.excludedSegmentNames(parameterNode.excludedSegments),
            register=parameterNode.registerFollowup, clinical=mrml_workflow.clinical_inputs_from_panel(
                parameterNode.nodePositivePrimary, parameterNode.diseaseFreeIntervalMonths, parameterNode.ceaNgMl,
                parameterNode.krasMutated, parameterNode.extrahepaticDisease), step=step)

    def resultNodes(self, parameterNode):
        """The result table and chart nodes, created once and kept in the parameter node.

        Tables are locked: they show computed results, which an edit in the table view would falsify.
        """
        def node(attribute, name, className="vtkMRMLTableNode"):
            if not getattr(parameterNode, attribute):
                setattr(parameterNode, attribute, slicer.mrmlScene.AddNewNodeByClass(className, name))
            found = getattr(parameterNode, attribute)
            if className == "vtkMRMLTableNode":
                found.SetLocked(True)
            return found

        tables = {attribute: node(attribute, name) for attribute, name in RESULT_TABLES}
        return mrml_workflow.ResultNodes(
            summary=tables["summaryTable"], lesions=tables["lesionTable"], response=tables["responseTable"],
            matched_lesions=tables["matchedLesionTable"], survival=tables["survivalTable"],
            survival_curves=tables["survivalCurveTable"],
            survival_chart=node("survivalChart", "TTV survival chart", "vtkMRMLPlotChartNode"),
            scores=tables["scoreTable"])

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
        """(CT, segmentation) of the time point under review; a labelmap chosen as the CT counts as no CT."""
        if parameterNode.reviewTimePoint == FOLLOWUP:
            volumeNode, segmentationNode = parameterNode.followupVolume, parameterNode.followupSegmentation
        else:
            volumeNode, segmentationNode = parameterNode.baselineVolume, parameterNode.baselineSegmentation
        if volumeNode is not None and volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
            volumeNode = None
        return volumeNode, segmentationNode

    def selectLesion(self, parameterNode, segmentId: str) -> None:
        """A lesion chosen in the review table: the slice views jump to it and the editor selects it."""
        _, segmentationNode = self.reviewNodes(parameterNode)
        centre = segmentationNode.GetSegmentCenterRAS(segmentId) if segmentationNode else None
        if centre is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)
        self.segmentEditorNode(parameterNode).SetSelectedSegmentID(segmentId)

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

    def addLesionAtPoint(self, parameterNode, pointRas, saveStateForUndo=None):
        """Segment the lesion at a clicked point as a new 'Lesion N' segment; returns (name, result).

        Works in a region around the click (lesion_region). ``saveStateForUndo`` (the Segment Editor's) is
        called just before the segmentation changes, so the click can be undone there.
        """
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        if volumeNode is None:
            raise InputError(f"Select the {parameterNode.reviewTimePoint.lower()} CT first.")
        if segmentationNode is None:
            segmentationNode = self.createReviewSegmentation(parameterNode)
        segmentId, result = add_lesion_in_region(segmentationNode, volumeNode, [list(pointRas)],
                                                 before_change=saveStateForUndo)
        return segmentationNode.GetSegmentation().GetSegment(segmentId).GetName(), result

    def lesionRows(self, parameterNode) -> list:
        """The review table's rows; segment sizes are kept between calls until a label layer changes."""
        if self._lesionRowCache is None:
            self._lesionRowCache = LesionRowCache()
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        return self._lesionRowCache.rows(segmentationNode, volumeNode,
                                         self.excludedSegmentNames(parameterNode.excludedSegments))

    def setLesionVerified(self, parameterNode, segmentId: str, verified: bool) -> None:
        _, segmentationNode = self.reviewNodes(parameterNode)
        mrml_review.set_segment_verified(segmentationNode, segmentId, verified)

    def setAllLesionsVerified(self, parameterNode) -> None:
        for row in self.lesionRows(parameterNode):
            self.setLesionVerified(parameterNode, row.segment_id, True)

    def splitLesion(self, parameterNode, segmentId: str, saveStateForUndo=None) -> list:
        volumeNode, segmentationNode = self.reviewNodes(parameterNode)
        return mrml_review.split_segment_into_islands(segmentationNode, segmentId, volumeNode, saveStateForUndo)

    def deleteLesion(self, parameterNode, segmentId: str, saveStateForUndo=None) -> None:
        _, segmentationNode = self.reviewNodes(parameterNode)
        mrml_review.delete_segment(segmentationNode, segmentId, saveStateForUndo)


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
