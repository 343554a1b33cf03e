"""TTVPrognosis in 3D Slicer: the thin layer (metadata, parameter node, panel, logic facade, self-test).

Measuring, segmenting, comparing and predicting live in TTVPrognosisLib, shared with the command line.
"""

import contextlib
import os
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

from TTVPrognosisLib.mrml import console, panel_logic, panel_outputs, result_state, sample_data, self_test
from TTVPrognosisLib.mrml.observations import NodeObservations, PlacementSession, showingErrors
from TTVPrognosisLib.mrml.slice_capture import capture_key_images

STUDY_DOI = "10.1016/j.ejca.2024.114185"
BASELINE, FOLLOWUP = panel_logic.BASELINE, panel_logic.FOLLOWUP
YES_NO_UNKNOWN = ["Unknown", "No", "Yes"]
LESION_TABLE_REFRESH_MS = 500
UNDO_STATES = 10  # as Slicer's Segment Editor module keeps


class TTVPrognosis(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "TTV Prognosis"
        self.parent.categories = ["Quantification"]
        self.parent.contributors = ["TTVPrognosis developers"]
        self.parent.helpText = (
            "Total tumour volume (TTV) of colorectal liver metastases from segmentations of all lesions, its change "
            "between baseline and first follow-up CT beside RECIST 1.1 and the Tumour Burden Score, and overall "
            f"survival from an embedded model. Based on doi:{STUDY_DOI}. <b>Research use only.</b>")
        self.parent.acknowledgementText = (
            "Definitions follow the CAIRO5 total tumour volume studies (doi:10.1016/j.ejca.2024.114185, "
            "doi:10.1016/j.ejca.2025.115738).")
        iconPath = os.path.join(os.path.dirname(__file__), "Resources/Icons/TTVPrognosis.png")
        slicer.app.connect("startupCompleted()", lambda: sample_data.register_sample_data(iconPath))


@contextlib.contextmanager
def progressDialog(title: str, maximum: int = 1, show: bool = True):
    """A modal progress dialog with Cancel (None when not shown): nothing can be edited while the work reads."""
    dialog = slicer.util.createProgressDialog(windowTitle=title, labelText="Starting...", maximum=maximum,
                                              windowModality=qt.Qt.ApplicationModal) if show else None
    try:
        yield dialog
    finally:
        if dialog is not None:
            dialog.close()


def progressSteps(dialog):
    """step(text) for the logic: shows the next stage, and raises CancelledError once Cancel was pressed."""
    def step(text: str) -> None:
        slicer.app.processEvents()
        if dialog.wasCanceled:
            raise panel_logic.CancelledError()
        dialog.labelText, dialog.value = text, dialog.value + 1
        slicer.app.processEvents()
    return step


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
    # The .ui's ranges: without them the wrapper widens the spin box and -1 ("unknown") would show as a number.
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
        VTKObservationMixin.__init__(self)  # for the scene only: per-node observations release their node
        self.logic = self._parameterNode = self._parameterNodeGuiTag = self._lesionTableKey = None
        self._fillingLesionTable = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        # Segment Editor edits refresh the lesion table once they pause (a stroke of Paint is many events).
        self._lesionTableTimer = qt.QTimer()
        self._lesionTableTimer.setSingleShot(True)
        self._lesionTableTimer.setInterval(LESION_TABLE_REFRESH_MS)
        self._lesionTableTimer.connect("timeout()", self.onEditsPaused)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TTVPrognosis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TTVPrognosisLogic()
        self._parameterObservation = NodeObservations([vtk.vtkCommand.ModifiedEvent], self.onParameterNodeModified)
        self._pointsObservation = NodeObservations([slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent],
                                                   self.onLesionPointPlaced)
        self._segmentationObservations = [NodeObservations(panel_logic.SEGMENTATION_EDIT_EVENTS,
                                                           self.onSegmentationEdited) for _ in (BASELINE, FOLLOWUP)]
        appLogic = slicer.app.applicationLogic()
        # Leaving place mode some other way (Escape, the toolbar) stops Add lesion: the button does not stay pressed.
        self._placement = PlacementSession(appLogic.GetSelectionNode(), appLogic.GetInteractionNode(),
                                           self.stopAddingLesions)

        self.ui.lesionTableWidget.setColumnCount(len(panel_logic.LESION_TABLE_HEADERS))
        self.ui.lesionTableWidget.setHorizontalHeaderLabels(panel_logic.LESION_TABLE_HEADERS)
        self.ui.lesionTableWidget.horizontalHeader().setStretchLastSection(True)
        self.setupSegmentEditor()

        for event, method in ((slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose),
                              (slicer.mrmlScene.EndCloseEvent, self.onSceneEndOrImport),
                              (slicer.mrmlScene.EndImportEvent, self.onSceneEndOrImport)):
            self.addObserver(slicer.mrmlScene, event, method)
        ui = self.ui
        for widget, signal, slot in (
                (ui.computeButton, "clicked(bool)", self.onComputeButton),
                (ui.showTablesButton, "clicked(bool)", self.onShowTablesButton),
                (ui.saveReportButton, "clicked(bool)", self.onSaveReport), (ui.exportSegButton, "clicked(bool)",
                                                                             self.onExportSeg),
                (ui.createSegmentationButton, "clicked(bool)", self.onCreateSegmentation),
                (ui.addLesionButton, "toggled(bool)", self.onAddLesionToggled),
                (ui.lesionTableWidget, "itemChanged(QTableWidgetItem*)", self.onLesionItemChanged),
                (ui.lesionTableWidget, "currentCellChanged(int,int,int,int)", self.onLesionRowSelected),
                (ui.verifyAllButton, "clicked(bool)", self.onVerifyAll), (ui.splitLesionButton, "clicked(bool)",
                                                                          self.onSplitLesion),
                (ui.deleteLesionButton, "clicked(bool)", self.onDeleteLesion),
                (ui.showSurvivalChartButton, "clicked(bool)", self.onShowSurvivalChart),
                (ui.modelCardButton, "clicked(bool)", self.onModelCard)):
            widget.connect(signal, slot)
        self.initializeParameterNode()

    def setupSegmentEditor(self) -> None:
        """Embedded Segment Editor with the effects a radiologist needs (Local Threshold if installed)."""
        editor = self.ui.segmentEditorWidget
        editor.setMRMLScene(slicer.mrmlScene)
        editor.setMaximumNumberOfUndoStates(UNDO_STATES)  # Add lesion, Split and Delete save states too
        available = set(editor.availableEffectNames()) if hasattr(editor, "availableEffectNames") else None
        editor.setEffectNameOrder([name for name in panel_logic.SEGMENT_EDITOR_EFFECTS
                                   if available is None or name in available])
        editor.unorderedEffectsVisible = False
        editor.segmentationNodeSelectorVisible = False  # the panel's own selectors choose the nodes
        editor.sourceVolumeNodeSelectorVisible = False  # (Slicer 5.8 and later; the "master" names warn there)

    def parameterWidgets(self) -> dict:
        """{parameter name: widget} from the .ui's SlicerParameterName properties (what connectGui finds)."""
        widgets = self.ui.inputsCollapsibleButton.parentWidget().findChildren(qt.QWidget)
        return {widget.property("SlicerParameterName"): widget for widget in widgets
                if widget.property("SlicerParameterName")}

    def cleanup(self) -> None:
        """Developer Reload calls this on the old panel, then setup() on a new one: leave nothing behind."""
        self.onSceneStartClose(None, None)  # the review stopped, nothing bound or watched
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()  # they live on the main window, not on this panel
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(None)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()  # undone in exit(), as Slicer's Segment Editor does
        self.ui.segmentEditorWidget.updateWidgetFromMRML()

    def exit(self) -> None:
        self.stopReview()
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.stopReview()
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.setParameterNode(None)
        self.logic.lastOutcome = None  # Save report never shows an outcome of a closed scene
        for observation in self._segmentationObservations:  # kept while the module is left: edits elsewhere
            observation.release()  # still mark the results out of date

    def stopReview(self) -> None:
        """Leave the review idle: no clicks placed, no active effect (an active Paint would keep taking clicks in
        the slice views), nothing watched. Shortcuts stay while entered (Slicer's Segment Editor: only exit())."""
        self.stopAddingLesions()
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)
        editor.removeViewObservations()
        self._lesionTableTimer.stop()

    def onSceneEndOrImport(self, caller, event) -> None:
        """After Close Scene or loading a scene (.mrb): its parameter node, its inputs and its saved results."""
        if self.parent.isEntered:
            self.initializeParameterNode()
            self.ui.segmentEditorWidget.updateWidgetFromMRML()

    def initializeParameterNode(self) -> None:
        parameterNode = self.logic.getParameterNode()
        if not parameterNode.baselineVolume:
            parameterNode.baselineVolume = panel_logic.first_ct_volume(slicer.mrmlScene)
        self.setParameterNode(parameterNode)

    def setParameterNode(self, parameterNode) -> None:
        """Bind the panel to a parameter node. connectParametersToGui returns its tag on Slicer 5.8 too (connectGui
        only from 5.10): without it the old connectors stay and reset the clinical choices at every enter()."""
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNodeGuiTag = None
        self._parameterNode = parameterNode
        self._lesionTableKey = None
        self._parameterObservation.observe(parameterNode.parameterNode if parameterNode else None)
        if parameterNode:
            self._parameterNodeGuiTag = parameterNode.connectParametersToGui(self.parameterWidgets())
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode(parameterNode))
        self.showTables()
        self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Keep buttons, the segment editor, the lesion table and the results in step with the chosen inputs."""
        parameterNode = self._parameterNode
        ready = bool(parameterNode and parameterNode.baselineSegmentation)
        self.ui.computeButton.enabled = ready
        self.ui.computeButton.toolTip = ("Measure TTV, compare with the follow-up and predict survival." if ready
                                         else "Select a baseline segmentation first.")
        volumeNode, segmentationNode = self.logic.reviewNodes(parameterNode) if parameterNode else (None, None)
        self.ui.addLesionButton.enabled = bool(volumeNode and segmentationNode)
        if not self.ui.addLesionButton.enabled:
            self.stopAddingLesions()
        self.ui.createSegmentationButton.enabled = volumeNode is not None
        if parameterNode is not None:
            for observation, node in zip(self._segmentationObservations, (parameterNode.baselineSegmentation,
                                                                            parameterNode.followupSegmentation)):
                observation.observe(node)
        if parameterNode is not None and self.parent.isEntered:
            self.setEditorNodes(volumeNode, segmentationNode)
        shown = result_state.shown_results(parameterNode)
        self.ui.summaryLabel.text, self.ui.prognosisLabel.text = shown.summary_html, shown.prognosis_html
        buttons = panel_outputs.output_buttons(shown, volumeNode, segmentationNode)
        self.ui.saveReportButton.enabled, self.ui.saveReportButton.toolTip = buttons.report_enabled, buttons.report_tip
        self.ui.exportSegButton.enabled, self.ui.exportSegButton.toolTip = buttons.seg_enabled, buttons.seg_tip
        # Only what the review table shows refreshes it: a clinical value or the registration tick costs nothing.
        key = (parameterNode.reviewTimePoint, parameterNode.excludedSegments, volumeNode and volumeNode.GetID(),
               segmentationNode and segmentationNode.GetID()) if parameterNode else None
        if key != self._lesionTableKey:
            self._lesionTableKey = key
            self.updateLesionTable()

    def onSegmentationEdited(self, caller=None, event=None) -> None:
        if slicer.mrmlScene.IsImporting() or slicer.mrmlScene.IsClosing():
            return  # segments being read from a saved scene are no edit
        # Watched while the module is left too (edits in the Segment Editor module): its own parameter node then.
        result_state.mark_inputs_edited((self._parameterNode or self.logic.getParameterNode()).summaryTable)
        self._lesionTableTimer.start()  # restarted by every event: one refresh after the edit

    def onEditsPaused(self) -> None:
        self._lesionTableKey = None  # the table and the results' "out of date" note
        self.onParameterNodeModified()

    def setEditorNodes(self, volumeNode, segmentationNode) -> None:
        editor = self.ui.segmentEditorWidget
        if editor.segmentationNode() != segmentationNode:
            editor.setSegmentationNode(segmentationNode)
        if segmentationNode is not None:  # without one, the editor logs an error for a source volume
            editor.setSourceVolumeNode(volumeNode)

    def onCreateSegmentation(self) -> None:
        with showingErrors("Failed to create a segmentation.", waitCursor=True):
            self.logic.createReviewSegmentation(self._parameterNode)

    def onAddLesionToggled(self, checked: bool) -> None:
        if checked:
            pointsNode = self.logic.lesionPointsNode(self._parameterNode)
            self._pointsObservation.observe(pointsNode)
            self._placement.start(pointsNode)
            self.ui.addLesionStatusLabel.text = "Click on a lesion in a slice view (press the button again to stop)."
        else:
            self.stopAddingLesions()

    def stopAddingLesions(self) -> None:
        self._pointsObservation.release()
        self._placement.stop()  # the placement settings as they were before Add lesion
        if hasattr(self, "ui") and self.ui.addLesionButton.checked:
            wasBlocked = self.ui.addLesionButton.blockSignals(True)
            self.ui.addLesionButton.checked = False
            self.ui.addLesionButton.blockSignals(wasBlocked)
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
            name, result = self.logic.addLesionAtPoint(self._parameterNode, position,
                                                       self.ui.segmentEditorWidget.saveStateForUndo)
            text = f"{name}: {result.volume_ml:.2f} mL ({result.polarity}). Undo in the Segment Editor below."
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
                cells = [row.name, f"{row.volume_ml:.2f}", f"{row.longest_axial_diameter_mm:.1f}", ""]
                for column, text in enumerate(cells):
                    item = qt.QTableWidgetItem(text)
                    item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                    if column == 3:
                        item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled | qt.Qt.ItemIsUserCheckable)
                        item.setCheckState(qt.Qt.Checked if row.verified else qt.Qt.Unchecked)
                    item.setData(qt.Qt.UserRole, row.segment_id)
                    table.setItem(index, column, item)
        finally:
            self._fillingLesionTable = False

    def selectedSegmentId(self, tell: bool = False):
        item = self.ui.lesionTableWidget.item(self.ui.lesionTableWidget.currentRow(), 0)
        if item is None and tell:
            slicer.util.infoDisplay("Select a lesion in the table first.")
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
        self.logic.selectLesion(self._parameterNode, segmentId)

    def onVerifyAll(self) -> None:
        with showingErrors("Could not mark the lesions verified."):
            self.logic.setAllLesionsVerified(self._parameterNode)
        self.updateLesionTable()

    def onSplitLesion(self) -> None:
        segmentId = self.selectedSegmentId(tell=True)
        if not segmentId:
            return
        with showingErrors("Could not split the lesion.", waitCursor=True):
            undo = self.ui.segmentEditorWidget.saveStateForUndo
            created = self.logic.splitLesion(self._parameterNode, segmentId, undo)
            self.ui.addLesionStatusLabel.text = (f"Split into {len(created)} segments." if len(created) > 1
                                                 else "The segment has a single island.")
        self.updateLesionTable()

    def onDeleteLesion(self) -> None:
        segmentId = self.selectedSegmentId(tell=True)
        question = "Delete the selected lesion segment? (Undo in the Segment Editor.)"
        if segmentId and slicer.util.confirmYesNoDisplay(question):
            with showingErrors("Could not delete the lesion."):
                undo = self.ui.segmentEditorWidget.saveStateForUndo
                self.logic.deleteLesion(self._parameterNode, segmentId, undo)
            self.updateLesionTable()

    def onComputeButton(self) -> None:
        """Compute TTV with progress and Cancel; a cancelled or failed run leaves the previous results as they were."""
        self.stopAddingLesions()
        with showingErrors("Failed to compute TTV."), progressDialog("Compute TTV", maximum=5) as dialog:
            try:
                self.logic.computeTTV(self._parameterNode, step=progressSteps(dialog))
                self.showTables()
                self.ui.resultsCollapsibleButton.collapsed = False
            except panel_logic.CancelledError:
                slicer.util.showStatusMessage("Compute TTV cancelled; the scene is as it was.", 5000)
        self.onParameterNodeModified()

    def offerToInstall(self, package: str, purpose: str) -> bool:
        """Install a package Slicer does not bundle, only when the user agrees (never at import time)."""
        if not panel_outputs.importable(package) and slicer.util.confirmOkCancelDisplay(
                panel_outputs.install_question(package, purpose)):
            with showingErrors(f"Could not install {package}.", waitCursor=True):
                slicer.util.pip_install(package)
        return panel_outputs.importable(package)

    def askSavePath(self, title: str, name: str, filters: str) -> str:
        return qt.QFileDialog.getSaveFileName(self.parent, title, os.path.join(slicer.app.defaultScenePath, name),
                                              filters)

    def onSaveReport(self) -> None:
        """PDF with drawn pictures when matplotlib is (or gets) installed; else HTML with slice-view captures."""
        drawn = self.offerToInstall("matplotlib", panel_outputs.MATPLOTLIB_PURPOSE)
        p = self._parameterNode
        path = self.askSavePath("Save the patient report", panel_outputs.default_report_name(
            p.baselineSegmentation.GetName(), drawn), panel_outputs.REPORT_FILTERS[drawn])
        if path:
            with showingErrors("Could not save the report.", waitCursor=True):
                written = panel_outputs.save_panel_report(self.logic, p, path, lambda outcome: capture_key_images(
                    outcome, p.baselineVolume, p.followupVolume, p.baselineSegmentation, p.followupSegmentation))
                slicer.util.showStatusMessage(f"Report saved: {', '.join(map(str, written))}", 10000)

    def onExportSeg(self) -> None:
        name = panel_outputs.default_seg_name(self.logic.reviewNodes(self._parameterNode)[1].GetName())
        path = self.offerToInstall("highdicom", "Export DICOM SEG") and self.askSavePath(
            "Export DICOM SEG", name, panel_outputs.SEG_FILTER)
        if path:
            with showingErrors("Could not export the DICOM SEG.", waitCursor=True):
                slicer.util.infoDisplay(panel_outputs.seg_message(panel_outputs.export_panel_seg(
                    self.logic, self._parameterNode, path, slicer.dicomDatabase.fileForInstance)))

    def showTables(self) -> None:
        parameterNode = self._parameterNode
        for view, attribute in ((self.ui.summaryTableView, "summaryTable"), (self.ui.lesionTableView, "lesionTable"),
                                (self.ui.responseTableView, "responseTable"),
                                (self.ui.matchedLesionTableView, "matchedLesionTable"),
                                (self.ui.survivalTableView, "survivalTable"), (self.ui.scoreTableView, "scoreTable")):
            view.setMRMLTableNode(getattr(parameterNode, attribute) if parameterNode else None)

    def computedNode(self, attribute: str):
        node = getattr(self._parameterNode, attribute) if self._parameterNode else None
        if node is None:
            slicer.util.infoDisplay("Press Compute TTV first.")
        return node

    def onShowTablesButton(self) -> None:
        table = self.computedNode("summaryTable")
        if table is not None:
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
            slicer.util.selectModule("Tables")

    def onShowSurvivalChart(self) -> None:
        chart = self.computedNode("survivalChart")
        if chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(chart)

    def onModelCard(self) -> None:
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(self.logic.modelCardPath()))


class TTVPrognosisLogic(ScriptedLoadableModuleLogic, panel_logic.PanelLogic):
    """Facade over TTVPrognosisLib for the panel and the Python console; never touches widgets."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return TTVPrognosisParameterNode(super().getParameterNode())

    def processCohort(self, manifest, output, lesionsOutput=None, resume=False, overwrite=False, tableNode=None,
                      showProgress=True):
        """Batch a cohort manifest from the Python console, as `ttvprognosis batch` (see mrml.console.process_cohort);
        Cancel in the progress dialog stops between patients. Returns (CohortResult, table node)."""
        with progressDialog("TTVPrognosis cohort", show=showProgress) as dialog:
            return console.process_cohort(slicer.mrmlScene, manifest, output, lesionsOutput, resume, overwrite,
                                          tableNode, *console.dialog_progress(dialog, slicer.app.processEvents))


class TTVPrognosisTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test on the demo case (no download): the panel driven as a user would, then the logic as the
    Python console does; the steps and checks live in mrml.self_test."""

    def runTest(self):
        self.test_panel_then_logic()

    def test_panel_then_logic(self):
        self_test.run_all(lambda: slicer.modules.TTVPrognosisWidget, TTVPrognosisLogic, self.delayDisplay,
                          slicer.app.temporaryPath)
