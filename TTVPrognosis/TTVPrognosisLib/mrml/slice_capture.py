"""Key images from Slicer's own slice views, for the HTML report when matplotlib is not installed.

For each key lesion (:func:`..report.key_images.key_lesions`: targets, new and disappeared lesions) the Red
slice view is turned axial, centred on the lesion at each time point, with that time point's CT (liver window)
and segmentation, and captured with the ScreenCapture module's logic. The view's layers, position, field of
view and the CT's window are put back afterwards. Needs the Slicer application (not run by the headless tests).
"""

from __future__ import annotations

import logging
import os
import tempfile

import slicer
import vtk

from ..report.key_images import key_lesions

VIEW = "Red"


def capture_key_images(outcome, baseline_volume, followup_volume, baseline_segmentation, followup_segmentation,
                       window_hu: tuple[float, float] = (150.0, 75.0)) -> list[tuple[str, bytes]]:
    """(title, PNG bytes) per key lesion and time point; [] without a CT or a shown Red slice view."""
    layout = slicer.app.layoutManager() if hasattr(slicer, "app") else None
    widget = layout.sliceWidget(VIEW) if layout is not None else None
    if widget is None or baseline_volume is None:
        return []
    import ScreenCapture

    capture = ScreenCapture.ScreenCaptureLogic()
    slice_node, composite = widget.mrmlSliceNode(), widget.sliceLogic().GetSliceCompositeNode()
    slice_to_ras = vtk.vtkMatrix4x4()
    slice_to_ras.DeepCopy(slice_node.GetSliceToRAS())  # the view's orientation and position
    saved_view = (list(slice_node.GetFieldOfView()), composite.GetBackgroundVolumeID(),
                  composite.GetForegroundVolumeID(), composite.GetLabelVolumeID())
    sides = [("baseline", baseline_volume, baseline_segmentation),
             ("follow-up", followup_volume, followup_segmentation)]
    saved_windows = [_set_window(volume, window_hu) for _, volume, _ in sides if volume is not None]
    displays = _segmentation_displays()
    saved_displays = [(display, display.GetVisibility(), display.GetVisibility2D()) for _, display in displays]
    images = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for key in key_lesions(outcome.result):
                points = (key.baseline_point_ras, key.followup_point_ras)
                for (label, volume, segmentation), point in zip(sides, points):
                    if volume is None or point is None:
                        continue
                    composite.SetBackgroundVolumeID(volume.GetID())
                    composite.SetForegroundVolumeID(None)
                    composite.SetLabelVolumeID(None)
                    _show_only(displays, segmentation)
                    slice_node.SetOrientation("Axial")
                    slice_node.SetFieldOfView(*_square_pixels(key.field_mm, slice_node.GetDimensions()),
                                              slice_node.GetFieldOfView()[2])
                    slice_node.JumpSliceByCentering(*point)
                    path = os.path.join(folder, f"{len(images)}.png")
                    try:
                        capture.captureImageFromView(widget.sliceView(), path)
                    except ValueError:  # ScreenCapture's "capture failed": the Red view is not shown
                        logging.warning("The Red slice view could not be captured; the report has no key images.")
                        return []
                    with open(path, "rb") as handle:
                        images.append((f"{key.title} ({label})", handle.read()))
    finally:
        for restore in saved_windows:
            restore()
        for display, visible, visible_2d in saved_displays:
            display.SetVisibility2D(visible_2d)
            display.SetVisibility(visible)
        field, background, foreground, label = saved_view
        slice_node.GetSliceToRAS().DeepCopy(slice_to_ras)
        slice_node.SetFieldOfView(*field)
        slice_node.UpdateMatrices()
        composite.SetBackgroundVolumeID(background)
        composite.SetForegroundVolumeID(foreground)
        composite.SetLabelVolumeID(label)
    return images


def _square_pixels(field_mm: float, dimensions) -> tuple[float, float]:
    """A field of view at least ``field_mm`` wide and high with the view's aspect (else pixels are not square)."""
    width, height = max(int(dimensions[0]), 1), max(int(dimensions[1]), 1)
    return (field_mm * width / height, field_mm) if width >= height else (field_mm, field_mm * height / width)


def _set_window(volume_node, window_hu: tuple[float, float]):
    """Window the CT for the liver; returns what puts the user's window back."""
    display = volume_node.GetDisplayNode()
    if display is None:
        return lambda: None
    auto, window, level = display.GetAutoWindowLevel(), display.GetWindow(), display.GetLevel()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(*window_hu)

    def restore() -> None:
        display.SetWindowLevel(window, level)
        display.SetAutoWindowLevel(auto)
    return restore


def _segmentation_displays() -> list:
    scene = slicer.mrmlScene
    nodes = [scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
             for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))]
    return [(node, node.GetDisplayNode()) for node in nodes if node.GetDisplayNode() is not None]


def _show_only(displays: list, segmentation_node) -> None:
    """Only the time point's segmentation is drawn in the slice views while capturing."""
    for node, display in displays:
        shown = node is segmentation_node
        display.SetVisibility2D(shown)
        if shown:
            display.SetVisibility(True)
