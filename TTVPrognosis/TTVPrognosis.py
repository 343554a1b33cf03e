"""TTVPrognosis: total tumour volume, response and prognosis for colorectal liver metastases in 3D Slicer.

This file is the thin Slicer layer: module metadata, the parameter node, the panel and a logic facade.
All measuring, comparing and predicting lives in TTVPrognosisLib, shared with the command line and the
batch; the panel only gathers inputs, calls the logic and shows results.
"""

import slicer
import vtk
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from TTVPrognosisLib import mrml, mrml_results
from TTVPrognosisLib.response import compare

STUDY_DOI = "10.1016/j.ejca.2024.114185"


class TTVPrognosis(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "TTV Prognosis"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["TTVPrognosis developers"]
        self.parent.helpText = (
            "Total tumour volume (TTV) of colorectal liver metastases from segmentations of all lesions, its "
            "change between baseline and first follow-up CT, and overall survival from an embedded model. "
            f"Based on doi:{STUDY_DOI}. <b>Research use only.</b> "
            "See the <a href='https://github.com/ttvprognosis/TTVPrognosis'>README</a> for definitions.")
        self.parent.acknowledgementText = (
            "Definitions follow the CAIRO5 total tumour volume studies (doi:10.1016/j.ejca.2024.114185, "
            "doi:10.1016/j.ejca.2025.115738).")


@parameterNodeWrapper
class TTVPrognosisParameterNode:
    """Panel state, stored in the scene so that saving and reopening a scene restores it."""

    baselineVolume: slicer.vtkMRMLScalarVolumeNode
    baselineSegmentation: slicer.vtkMRMLSegmentationNode
    followupVolume: slicer.vtkMRMLScalarVolumeNode
    followupSegmentation: slicer.vtkMRMLSegmentationNode
    excludedSegments: str = ""
    summaryTable: slicer.vtkMRMLTableNode
    lesionTable: slicer.vtkMRMLTableNode


class TTVPrognosisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: selectors bound to the parameter node, a Compute TTV button, result tables."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TTVPrognosis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TTVPrognosisLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.showTablesButton.connect("clicked(bool)", self.onShowTablesButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonStates)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtonStates)
            self.showTables()
        self.updateButtonStates()

    def updateButtonStates(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.baselineSegmentation)
        self.ui.computeButton.enabled = ready
        self.ui.computeButton.toolTip = ("Measure TTV, lesions and diameters." if ready
                                         else "Select a baseline segmentation first.")

    def onComputeButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Failed to compute TTV.", waitCursor=True):
            result = self.logic.computeTTV(self._parameterNode)
            self.ui.summaryLabel.text = self.logic.summaryHtml(result)
            self.showTables()

    def showTables(self) -> None:
        self.ui.summaryTableView.setMRMLTableNode(self._parameterNode.summaryTable)
        self.ui.lesionTableView.setMRMLTableNode(self._parameterNode.lesionTable)

    def onShowTablesButton(self) -> None:
        table = self._parameterNode.summaryTable if self._parameterNode else None
        if table is None:
            slicer.util.infoDisplay("Press Compute TTV first.")
            return
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        slicer.util.selectModule("Tables")


class TTVPrognosisLogic(ScriptedLoadableModuleLogic):
    """Facade over TTVPrognosisLib for the panel and the Python console; never touches widgets."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return TTVPrognosisParameterNode(super().getParameterNode())

    @staticmethod
    def excludedSegmentNames(text: str) -> list:
        """Comma-separated segment names as typed by the user."""
        return [name.strip() for name in (text or "").split(",") if name.strip()]

    def measure(self, segmentationNode, volumeNode=None, excluded=()):
        """Measure one segmentation node (it is not modified); see TTVPrognosisLib.volumetry."""
        return mrml.measure_segmentation_node(segmentationNode, volumeNode, exclude=list(excluded))

    def computeTTV(self, parameterNode):
        """Measure the baseline (and follow-up, when selected), fill the result tables, return the result.

        Returns a Measurement, or a Comparison when a follow-up segmentation is selected.
        """
        excluded = self.excludedSegmentNames(parameterNode.excludedSegments)
        baseline = self.measure(parameterNode.baselineSegmentation, parameterNode.baselineVolume, excluded)
        result = baseline
        if parameterNode.followupSegmentation:
            followup = self.measure(parameterNode.followupSegmentation, parameterNode.followupVolume, excluded)
            result = compare(baseline, followup)
        self.writeTables(parameterNode, result)
        return result

    def writeTables(self, parameterNode, result) -> None:
        """Summary (baseline, follow-up, change) and lesion tables, created once and then reused."""
        if not parameterNode.summaryTable:
            parameterNode.summaryTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "TTV summary")
        if not parameterNode.lesionTable:
            parameterNode.lesionTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "TTV lesions")
        mrml_results.write_result_tables(result, parameterNode.summaryTable, parameterNode.lesionTable)

    @staticmethod
    def summaryHtml(result) -> str:
        """Short summary for the panel, with warnings."""
        comparison = result if hasattr(result, "baseline") else None
        baseline = comparison.baseline if comparison else result
        lines = [f"<b>Baseline TTV {baseline.ttv_ml:.1f} mL</b> in {baseline.lesion_count} lesion(s)."]
        warnings = list(baseline.warnings)
        if comparison:
            relative = comparison.relative_change_percent
            change = f"{comparison.absolute_change_ml:+.1f} mL" + (f" ({relative:+.0f} %)" if relative is not None
                                                                  else "")
            lines.append(f"<b>Follow-up TTV {comparison.followup.ttv_ml:.1f} mL</b> in "
                         f"{comparison.followup.lesion_count} lesion(s): change {change}.")
            warnings += comparison.followup.warnings + comparison.warnings
        lines += [f"<span style='color:#b35900'>Warning: {warning}</span>" for warning in warnings]
        return "<br>".join(lines)


class TTVPrognosisTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test on the embedded synthetic case (no downloads)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_computeTTV_matches_library()
        self.setUp()
        self.test_missing_segmentation_is_reported()

    def loadDemoTimePoint(self, followup):
        from TTVPrognosisLib.demo_data import demo_time_point

        image, segmentation = demo_time_point(followup=followup)
        name = "Follow-up" if followup else "Baseline"
        volumeNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{name} CT")
        slicer.util.updateVolumeFromArray(volumeNode, image.voxels)
        volumeNode.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
        segmentationNode = mrml.segmentation_node_from_label_volume(segmentation, slicer.mrmlScene,
                                                                    f"{name} segmentation")
        return volumeNode, segmentationNode, segmentation

    def test_computeTTV_matches_library(self):
        from TTVPrognosisLib.volumetry import measure

        self.delayDisplay("Compute TTV on the demo pair")
        baselineVolume, baselineSegmentation, baselineLabels = self.loadDemoTimePoint(followup=False)
        followupVolume, followupSegmentation, followupLabels = self.loadDemoTimePoint(followup=True)
        logic = TTVPrognosisLogic()
        parameterNode = logic.getParameterNode()
        parameterNode.baselineVolume = baselineVolume
        parameterNode.baselineSegmentation = baselineSegmentation
        parameterNode.followupVolume = followupVolume
        parameterNode.followupSegmentation = followupSegmentation
        comparison = logic.computeTTV(parameterNode)
        self.assertAlmostEqual(comparison.baseline.ttv_ml, measure(baselineLabels).ttv_ml, places=9)
        self.assertAlmostEqual(comparison.followup.ttv_ml, measure(followupLabels).ttv_ml, places=9)
        self.assertEqual(parameterNode.lesionTable.GetNumberOfRows(), comparison.baseline.lesion_count)
        self.assertGreater(parameterNode.summaryTable.GetNumberOfRows(), 0)
        self.assertIn("Follow-up TTV", logic.summaryHtml(comparison))
        self.delayDisplay("Test passed")

    def test_missing_segmentation_is_reported(self):
        from TTVPrognosisLib.errors import InputError

        self.delayDisplay("No baseline segmentation selected")
        logic = TTVPrognosisLogic()
        with self.assertRaises(InputError):
            logic.computeTTV(logic.getParameterNode())
        self.delayDisplay("Test passed")
