"""TTVPrognosis: total tumour volume, response and prognosis for colorectal liver metastases in 3D Slicer.

This file is the thin Slicer layer: module metadata, the parameter node, the panel and a logic facade.
All measuring, segmenting, comparing and predicting lives in TTVPrognosisLib, shared with the command line
and the batch; the panel gathers inputs, calls the logic and shows results.
"""

import contextlib
import logging
from typing import Annotated

import qt
import slicer
import vtk
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from TTVPrognosisLib.mrml import panel_logic, self_test
from TTVPrognosisLib.mrml import results as mrml_results

STUDY_DOI = "10.1016/j.ejca.2024.114185"
BASELINE, FOLLOWUP = panel_logic.BASELINE, panel_logic.FOLLOWUP
YES_NO_UNKNOWN = ["Unknown", "No", "Yes"]
SEGMENT_EDITOR_EFFECTS = ["Paint", "Draw", "Erase", "Scissors", "Islands", "Smoothing", "Threshold", "Grow from seeds",
                          "Local Threshold"]
LESION_TABLE_HEADERS = ["Lesion", "Volume (mL)", "Axial diameter (mm)", "Verified"]
LESION_TABLE_REFRESH_MS = 500
# Edits of the reviewed segmentation (in the embedded Segment Editor too) that change the lesion table.
SEGMENTATION_EDIT_EVENTS = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                            slicer.vtkSegmentation.SegmentModified, slicer.vtkSegmentation.SourceRepresentationModified)


@contextlib.contextmanager
def showingErrors(message: str, waitCursor: bool = False):
    """Show an error of the block in a dialog and end it there.

    slicer.util.tryWithErrorDisplay shows the dialog and then raises the error again, which would skip what a
    handler does after the block (refreshing the lesion table, resetting a label): the panel carries on.
    """
    try:
        with slicer.util.tryWithErrorDisplay(message, waitCursor=waitCursor):
            yield
    except Exception:
        logging.debug("Shown to the user: %s", message, exc_info=True)


class TTVPrognosis(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "TTV Prognosis"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["TTVPrognosis developers"]
        self.parent.helpText = (
            "Total tumour volume (TTV) of colorectal liver metastases from segmentations of all lesions, its change "
            "between baseline and first follow-up CT beside RECIST 1.1 and the Tumour Burden Score, and overall "
            f"survival from an embedded model. Based on doi:{STUDY_DOI}. <b>Research use only.</b>")
        self.parent.acknowledgementText = (
            "Definitions follow the CAIRO5 total tumour volume studies (doi:10.1016/j.ejca.2024.114185, "
            "doi:10.1016/j.ejca.2025.115738).")


@parameterNodeWrapper
class TTVPrognosisParameterNode:
    """Panel state, stored in the scene so that saving and reopening a scene (.mrb) restores it."""

    baselineVolume: slicer.vtkMRMLScalarVolumeNode
    baselineSegmentation: slicer.vtkMRMLSegmentationNode
    followupVolume: slicer.vtkMRMLScalarVolumeNode
    followupSegmentation: slicer.vtkMRMLSegmentationNode
    excludedSegments: str = ""
    registerFollowup: bool = True
    reviewTimePoint: Annotated[str, Choice([BASELINE, FOLLOWUP]), Default(BASELINE)]
    segmentEditorNode: slicer.vtkMRMLSegmentEditorNode
    lesionPoints: slicer.vtkMRMLMarkupsFiducialNode
    nodePositivePrimary: Annotated[str, Choice(YES_NO_UNKNOWN), Default("Unknown")]
    # The ranges are the .ui's: without them the parameter node widens its spin box to any number, and -1
    # ("unknown", the special value text at the minimum) would show as a number.
    diseaseFreeIntervalMonths: Annotated[float, WithinRange(-1.0, 600.0), Default(-1.0)]
    ceaNgMl: Annotated[float, WithinRange(-1.0, 100000.0), Default(-1.0)]
    krasMutated: Annotated[str, Choice(YES_NO_UNKNOWN), Default("Unknown")]
    extrahepaticDisease: Annotated[str, Choice(YES_NO_UNKNOWN), Default("Unknown")]
    summaryTable: slicer.vtkMRMLTableNode
    lesionTable: slicer.vtkMRMLTableNode
    responseTable: slicer.vtkMRMLTableNode
    matchedLesionTable: slicer.vtkMRMLTableNode
    survivalTable: slicer.vtkMRMLTableNode
    survivalCurveTable: slicer.vtkMRMLTableNode
    survivalChart: slicer.vtkMRMLPlotChartNode
    scoreTable: slicer.vtkMRMLTableNode


class TTVPrognosisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs bound to the parameter node, lesion review, Compute TTV, results, prognosis."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedPoints = None
        self._fillingLesionTable = False
        self._observedSegmentation = None
        self._lesionTableTimer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        # Segment Editor edits refresh the lesion table once they pause (a stroke of Paint is many events).
        self._lesionTableTimer = qt.QTimer()
        self._lesionTableTimer.setSingleShot(True)
        self._lesionTableTimer.setInterval(LESION_TABLE_REFRESH_MS)
        self._lesionTableTimer.connect("timeout()", self.updateLesionTable)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TTVPrognosis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TTVPrognosisLogic()

        self.ui.lesionTableWidget.setColumnCount(len(LESION_TABLE_HEADERS))
        self.ui.lesionTableWidget.setHorizontalHeaderLabels(LESION_TABLE_HEADERS)
        self.ui.lesionTableWidget.horizontalHeader().setStretchLastSection(True)
        self.setupSegmentEditor()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.showTablesButton.connect("clicked(bool)", self.onShowTablesButton)
        self.ui.createSegmentationButton.connect("clicked(bool)", self.onCreateSegmentation)
        self.ui.addLesionButton.connect("toggled(bool)", self.onAddLesionToggled)
        self.ui.lesionTableWidget.connect("itemChanged(QTableWidgetItem*)", self.onLesionItemChanged)
        self.ui.lesionTableWidget.connect("currentCellChanged(int,int,int,int)", self.onLesionRowSelected)
        self.ui.verifyAllButton.connect("clicked(bool)", self.onVerifyAll)
        self.ui.splitLesionButton.connect("clicked(bool)", self.onSplitLesion)
        self.ui.deleteLesionButton.connect("clicked(bool)", self.onDeleteLesion)
        self.ui.showSurvivalChartButton.connect("clicked(bool)", self.onShowSurvivalChart)
        self.ui.modelCardButton.connect("clicked(bool)", self.onModelCard)
        self.initializeParameterNode()

    def setupSegmentEditor(self) -> None:
        """Embedded Segment Editor with the effects a radiologist needs (Local Threshold if installed)."""
        editor = self.ui.segmentEditorWidget
        editor.setMRMLScene(slicer.mrmlScene)
        available = set(editor.availableEffectNames()) if hasattr(editor, "availableEffectNames") else None
        effects = [name for name in SEGMENT_EDITOR_EFFECTS if available is None or name in available]
        editor.setEffectNameOrder(effects)
        editor.unorderedEffectsVisible = False
        editor.segmentationNodeSelectorVisible = False  # the panel's own selectors choose the nodes
        editor.sourceVolumeNodeSelectorVisible = False  # (Slicer 5.8 and later; the "master" names warn there)

    def cleanup(self) -> None:
        self.stopAddingLesions()
        if self._lesionTableTimer is not None:
            self._lesionTableTimer.stop()
        self.removeObservers()
        self._observedSegmentation = None

    def enter(self) -> None:
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()  # undone in exit(), as Slicer's Segment Editor does
        self.ui.segmentEditorWidget.updateWidgetFromMRML()

    def exit(self) -> None:
        self.stopReview()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.stopReview()
        self.setParameterNode(None)

    def stopReview(self) -> None:
        """Leave the lesion review idle on leaving the module or its scene: no clicks placed, the embedded
        Segment Editor without an active effect (as Slicer's Segment Editor module leaves it: an active Paint
        would keep taking clicks in the slice views), the reviewed segmentation no longer watched."""
        self.stopAddingLesions()
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()
        self.observeReviewedSegmentation(None)
        self._lesionTableTimer.stop()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        parameterNode = self.logic.getParameterNode()
        if not parameterNode.baselineVolume:
            parameterNode.baselineVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        self.setParameterNode(parameterNode)

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode(self._parameterNode))
            self.showTables()
        self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Keep buttons, the segment editor and the lesion table in step with the chosen inputs."""
        parameterNode = self._parameterNode
        ready = bool(parameterNode and parameterNode.baselineSegmentation)
        self.ui.computeButton.enabled = ready
        self.ui.computeButton.toolTip = ("Measure TTV, compare with the follow-up and predict survival." if ready
                                         else "Select a baseline segmentation first.")
        volumeNode, segmentationNode = self.logic.reviewNodes(parameterNode) if parameterNode else (None, None)
        self.ui.addLesionButton.enabled = bool(volumeNode and segmentationNode)
        self.ui.createSegmentationButton.enabled = volumeNode is not None
        self.setEditorNodes(volumeNode, segmentationNode)
        self.observeReviewedSegmentation(segmentationNode)
        self.updateLesionTable()

    def observeReviewedSegmentation(self, segmentationNode) -> None:
        """Watch the segmentation under review, so that edits made outside the panel's buttons show in its table."""
        if segmentationNode is self._observedSegmentation:
            return
        for event in SEGMENTATION_EDIT_EVENTS:
            if self._observedSegmentation is not None:
                self.removeObserver(self._observedSegmentation, event, self.onReviewedSegmentationEdited)
            if segmentationNode is not None:
                self.addObserver(segmentationNode, event, self.onReviewedSegmentationEdited)
        self._observedSegmentation = segmentationNode

    def onReviewedSegmentationEdited(self, caller=None, event=None) -> None:
        self._lesionTableTimer.start()  # restarted by every event: one refresh after the edit

    def setEditorNodes(self, volumeNode, segmentationNode) -> None:
        editor = self.ui.segmentEditorWidget
        if editor.segmentationNode() != segmentationNode:
            editor.setSegmentationNode(segmentationNode)
        if segmentationNode is not None:  # without one, the editor logs an error for a source volume
            editor.setSourceVolumeNode(volumeNode)

    # --- lesion review ---------------------------------------------------------------------------------

    def onCreateSegmentation(self) -> None:
        with showingErrors("Failed to create a segmentation.", waitCursor=True):
            self.logic.createReviewSegmentation(self._parameterNode)

    def onAddLesionToggled(self, checked: bool) -> None:
        if checked:
            pointsNode = self.logic.lesionPointsNode(self._parameterNode)
            self._observedPoints = pointsNode
            self.addObserver(pointsNode, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onLesionPointPlaced)
            selectionNode = slicer.app.applicationLogic().GetSelectionNode()
            selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsFiducialNode")
            selectionNode.SetActivePlaceNodeID(pointsNode.GetID())
            interactionNode = slicer.app.applicationLogic().GetInteractionNode()
            interactionNode.SetPlaceModePersistence(1)
            interactionNode.SetCurrentInteractionMode(interactionNode.Place)
            self.ui.addLesionStatusLabel.text = "Click on a lesion in a slice view (press the button again to stop)."
        else:
            self.stopAddingLesions()

    def stopAddingLesions(self) -> None:
        if self._observedPoints is not None:
            self.removeObserver(self._observedPoints, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                self.onLesionPointPlaced)
            self._observedPoints = None
            interactionNode = slicer.app.applicationLogic().GetInteractionNode()
            interactionNode.SetPlaceModePersistence(0)  # as it was: other modules place one point at a time
            interactionNode.SetCurrentInteractionMode(interactionNode.ViewTransform)
        if hasattr(self, "ui") and self.ui.addLesionButton.checked:
            self.ui.addLesionButton.checked = False
            self.ui.addLesionStatusLabel.text = ""

    def onLesionPointPlaced(self, pointsNode, event) -> None:
        position = [0.0, 0.0, 0.0]
        pointsNode.GetNthControlPointPositionWorld(pointsNode.GetNumberOfControlPoints() - 1, position)
        # Leave the markups event before changing the node and the scene.
        qt.QTimer.singleShot(0, lambda: self.addLesionAt(pointsNode, position))

    def addLesionAt(self, pointsNode, position) -> None:
        pointsNode.RemoveAllControlPoints()
        self.ui.addLesionStatusLabel.text = "Segmenting..."
        slicer.app.processEvents()
        text = "No lesion added."
        with showingErrors("No lesion was added.", waitCursor=True):
            name, result = self.logic.addLesionAtPoint(self._parameterNode, position)
            text = f"{name}: {result.volume_ml:.2f} mL ({result.polarity})."
            if result.warnings:
                text += " " + " ".join(result.warnings)
        self.ui.addLesionStatusLabel.text = text
        self.updateLesionTable()

    def updateLesionTable(self) -> None:
        table = self.ui.lesionTableWidget
        self._fillingLesionTable = True
        try:
            rows = []
            if self._parameterNode:
                with showingErrors("Could not list the lesions."):
                    rows = self.logic.lesionRows(self._parameterNode)
            table.setRowCount(len(rows))
            for index, row in enumerate(rows):
                cells = [row.name, f"{row.volume_ml:.2f}", f"{row.longest_axial_diameter_mm:.1f}"]
                for column, text in enumerate(cells):
                    item = qt.QTableWidgetItem(text)
                    item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                    item.setData(qt.Qt.UserRole, row.segment_id)
                    table.setItem(index, column, item)
                verified = qt.QTableWidgetItem("")
                verified.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled | qt.Qt.ItemIsUserCheckable)
                verified.setCheckState(qt.Qt.Checked if row.verified else qt.Qt.Unchecked)
                verified.setData(qt.Qt.UserRole, row.segment_id)
                table.setItem(index, 3, verified)
        finally:
            self._fillingLesionTable = False

    def selectedSegmentId(self):
        item = self.ui.lesionTableWidget.item(self.ui.lesionTableWidget.currentRow(), 0)
        return item.data(qt.Qt.UserRole) if item else None

    def onLesionItemChanged(self, item) -> None:
        if self._fillingLesionTable or item.column() != 3:
            return
        with showingErrors("Could not change the verified state."):
            self.logic.setLesionVerified(self._parameterNode, item.data(qt.Qt.UserRole),
                                         item.checkState() == qt.Qt.Checked)
        qt.QTimer.singleShot(0, self.updateLesionTable)  # after this signal: a tick that did not take is undone

    def onLesionRowSelected(self, row, column, previousRow, previousColumn) -> None:
        segmentId = self.selectedSegmentId()
        if not segmentId:
            return
        _, segmentationNode = self.logic.reviewNodes(self._parameterNode)
        centre = segmentationNode.GetSegmentCenterRAS(segmentId) if segmentationNode else None
        if centre is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(centre[0], centre[1], centre[2], True)
        segmentEditorNode = self.logic.segmentEditorNode(self._parameterNode)
        setSelected = getattr(segmentEditorNode, "SetSelectedSegmentID", None)
        if setSelected:
            setSelected(segmentId)

    def onVerifyAll(self) -> None:
        with showingErrors("Could not mark the lesions verified."):
            for row in self.logic.lesionRows(self._parameterNode):
                self.logic.setLesionVerified(self._parameterNode, row.segment_id, True)
        self.updateLesionTable()

    def onSplitLesion(self) -> None:
        segmentId = self.selectedSegmentId()
        if not segmentId:
            slicer.util.infoDisplay("Select a lesion in the table first.")
            return
        with showingErrors("Could not split the lesion.", waitCursor=True):
            created = self.logic.splitLesion(self._parameterNode, segmentId)
            self.ui.addLesionStatusLabel.text = (f"Split into {len(created)} segments." if len(created) > 1
                                                 else "The segment has a single island.")
        self.updateLesionTable()

    def onDeleteLesion(self) -> None:
        segmentId = self.selectedSegmentId()
        if not segmentId:
            slicer.util.infoDisplay("Select a lesion in the table first.")
            return
        if slicer.util.confirmYesNoDisplay("Delete the selected lesion segment?"):
            self.logic.deleteLesion(self._parameterNode, segmentId)
            self.updateLesionTable()

    # --- results ---------------------------------------------------------------------------------------

    def onComputeButton(self) -> None:
        self.stopAddingLesions()
        with showingErrors("Failed to compute TTV.", waitCursor=True):
            outcome = self.logic.computeTTV(self._parameterNode)
            self.ui.summaryLabel.text = self.logic.summaryHtml(outcome)
            self.ui.prognosisLabel.text = self.logic.prognosisHtml(outcome)
            self.showTables()
            self.ui.resultsCollapsibleButton.collapsed = False

    def showTables(self) -> None:
        parameterNode = self._parameterNode
        for view, table in ((self.ui.summaryTableView, parameterNode.summaryTable),
                            (self.ui.lesionTableView, parameterNode.lesionTable),
                            (self.ui.responseTableView, parameterNode.responseTable),
                            (self.ui.matchedLesionTableView, parameterNode.matchedLesionTable),
                            (self.ui.survivalTableView, parameterNode.survivalTable),
                            (self.ui.scoreTableView, parameterNode.scoreTable)):
            view.setMRMLTableNode(table)

    def onShowTablesButton(self) -> None:
        table = self._parameterNode.summaryTable if self._parameterNode else None
        if table is None:
            slicer.util.infoDisplay("Press Compute TTV first.")
            return
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        slicer.util.selectModule("Tables")

    def onShowSurvivalChart(self) -> None:
        chart = self._parameterNode.survivalChart if self._parameterNode else None
        if chart is None:
            slicer.util.infoDisplay("Press Compute TTV first.")
            return
        slicer.modules.plots.logic().ShowChartInLayout(chart)

    def onModelCard(self) -> None:
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(self.logic.modelCardPath()))


class TTVPrognosisLogic(ScriptedLoadableModuleLogic, panel_logic.PanelLogic):
    """Facade over TTVPrognosisLib for the panel and the Python console; never touches widgets."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return TTVPrognosisParameterNode(super().getParameterNode())

    # --- cohorts -----------------------------------------------------------------------------------------

    def processCohort(self, manifest, output, lesionsOutput=None, resume=False, overwrite=False, tableNode=None,
                      showProgress=True):
        """Batch a cohort manifest from the Python console: the same tables and columns as `ttvprognosis batch`.

        Segmentations are read with Slicer's readers; a progress dialog can cancel (finished patients are
        kept; run again with resume=True). Returns (CohortResult, table node with the results).
        """
        from TTVPrognosisLib.cohort.manifest import read_manifest
        from TTVPrognosisLib.cohort.runner import run_cohort

        cohort = read_manifest(manifest, outputs=[path for path in (output, lesionsOutput) if path])
        for problem in cohort.warnings + cohort.file_problems:
            logging.warning(problem)
        dialog = None
        if showProgress:
            dialog = slicer.util.createProgressDialog(windowTitle="TTVPrognosis cohort", labelText="Starting...",
                                                      maximum=max(len(cohort.entries), 1))

        def progress(done, total, patientId):
            if dialog is not None:
                dialog.maximum, dialog.value = total, done
                dialog.labelText = f"{done} of {total} patients" + (f" (last: {patientId})" if patientId else "")
            slicer.app.processEvents()

        def shouldCancel():
            slicer.app.processEvents()
            return bool(dialog is not None and dialog.wasCanceled)

        try:
            result = run_cohort(cohort, output, lesionsOutput, workers=1, resume=resume, overwrite=overwrite,
                                progress=progress, should_cancel=shouldCancel,
                                read_segmentation=panel_logic.read_segmentation_with_slicer)
        finally:
            if dialog is not None:
                dialog.close()
        tableNode = tableNode or slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "TTVPrognosis cohort")
        mrml_results.fill_table(tableNode, result.columns, result.typed_rows())
        return result, tableNode


class TTVPrognosisTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test on the embedded synthetic case (no downloads); the checks live in mrml.self_test."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_computeTTV_matches_library, self.test_review_workflow, self.test_process_cohort,
                     self.test_missing_segmentation_is_reported):
            self.setUp()
            test()

    def test_computeTTV_matches_library(self):
        self.delayDisplay("Compute TTV on the demo pair")
        self_test.compute_ttv_matches_library(TTVPrognosisLogic(), slicer.mrmlScene)
        self.delayDisplay("Test passed")

    def test_review_workflow(self):
        self.delayDisplay("Add lesions by clicking, verify, and compute")
        self_test.review_workflow(TTVPrognosisLogic(), slicer.mrmlScene)
        self.delayDisplay("Test passed")

    def test_process_cohort(self):
        self.delayDisplay("Process a two-patient cohort from the console")
        self_test.process_cohort(TTVPrognosisLogic(), slicer.mrmlScene, slicer.util.saveNode)
        self.delayDisplay("Test passed")

    def test_missing_segmentation_is_reported(self):
        self.delayDisplay("No baseline segmentation selected")
        self_test.missing_segmentation_is_reported(TTVPrognosisLogic())
        self.delayDisplay("Test passed")
