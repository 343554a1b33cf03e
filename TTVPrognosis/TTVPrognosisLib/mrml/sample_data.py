"""The demo case as Slicer sample data: made here from the embedded definition, nothing is downloaded.

The Sample Data module lists it under "TTVPrognosis" (registered by the module at start-up, with a custom
loader that calls :func:`load_demo_case`): a radiologist can try the panel in two clicks.
"""

from __future__ import annotations

import slicer

from ..formats.demo_data import demo_time_point
from . import nodes as mrml

SAMPLE_CATEGORY = "TTVPrognosis"
SAMPLE_NAME = "TTVPrognosis demo (baseline and follow-up)"


def load_demo_time_point(scene, followup: bool):
    """(CT node, segmentation node, LabelVolume truth) of one time point of the embedded demo case."""
    image, segmentation = demo_time_point(followup=followup)
    name = "Follow-up" if followup else "Baseline"
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"Demo {name.lower()} CT")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    segmentation_node = mrml.segmentation_node_from_label_volume(segmentation, scene,
                                                                 f"Demo {name.lower()} segmentation")
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return volume_node, segmentation_node, segmentation


def load_demo_case(scene) -> list:
    """Baseline and follow-up CT and segmentation nodes in ``scene`` (CTs first, as Sample Data returns nodes)."""
    baseline_volume, baseline_segmentation, _ = load_demo_time_point(scene, followup=False)
    followup_volume, followup_segmentation, _ = load_demo_time_point(scene, followup=True)
    return [baseline_volume, followup_volume, baseline_segmentation, followup_segmentation]


def register_sample_data(thumbnail_path: str) -> None:
    """List the demo case in Slicer's Sample Data module; clicking it runs :func:`load_demo_case` (no download)."""
    import SampleData  # Slicer's scripted module, there once the application has started

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=SAMPLE_CATEGORY, sampleName=SAMPLE_NAME, uris=[], fileNames=[], nodeNames=[],
        thumbnailFileName=thumbnail_path, customDownloader=lambda source: load_demo_case(slicer.mrmlScene))
