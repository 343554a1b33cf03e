"""The measurements as a DICOM Structured Report (TID 1500 measurement report, highdicom), beside a DICOM SEG.

PACS and reporting systems that read TID 1500 get the numbers this tool reports, tied to the segmentation:
- one group for the total tumour volume (TTV; TID 1501, image-level, finding "Neoplasm, secondary" in the liver);
- one group per lesion (26-connected component, lesion 1 the largest; TID 1501): volume (SCT 118565006, mL),
  maximum 3-D diameter (SCT 81827009 "Diameter" with derivation SCT 56851009 "Maximum", mm) and longest axial
  diameter (SCT 103339001 "Long axis", mm, the RECIST measure); lesions are not segments of the SEG (a segment
  may hold several lesions), so these groups reference no segment;
- one group per lesion segment of the SEG (TID 1411, referencing that segment): its own volume.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..formats.segments import ROLE_LESION
from ..measure.volumetry import Measurement


def export_measurement_sr(seg_dataset, ct_datasets: list, measurement: Measurement, segment_rows: list[dict],
                          output: str | os.PathLike) -> Path:
    """Write the SR for ``measurement`` (of the segmentation exported as ``seg_dataset``; rows as
    :class:`.dicom_seg_export.ExportSummary` lists the segments)."""
    try:
        import highdicom.sr as sr
        from pydicom.sr.codedict import codes
        from pydicom.sr.coding import Code
        from pydicom.uid import generate_uid
    except ImportError as error:
        raise InputError("Writing a DICOM SR needs pydicom and highdicom: pip install pydicom highdicom.") from error
    millilitre, millimetre = Code("mL", "UCUM", "milliliter"), codes.UCUM.Millimeter
    finding, site = codes.cid7151.NeoplasmSecondary, [sr.FindingSite(codes.SCT.Liver)]

    def volume(value_ml: float):
        return sr.Measurement(name=codes.SCT.Volume, value=float(value_ml), unit=millilitre)

    groups = [sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=sr.TrackingIdentifier(uid=generate_uid(), identifier="Total tumour volume (TTV)"),
        finding_type=finding, finding_sites=site, measurements=[volume(measurement.ttv_ml)])]
    for lesion in measurement.lesions:
        groups.append(sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=sr.TrackingIdentifier(uid=generate_uid(), identifier=f"Lesion {lesion.lesion_id}"),
            finding_type=finding, finding_sites=site,
            measurements=[volume(lesion.volume_ml),
                          sr.Measurement(name=codes.SCT.Diameter, value=float(lesion.max_diameter_mm),
                                         unit=millimetre, derivation=codes.SCT.Maximum),
                          sr.Measurement(name=codes.SCT.LongAxis, value=float(lesion.longest_axial_diameter_mm),
                                         unit=millimetre)]))
    volumes = {segment.name: segment.volume_ml for segment in measurement.segments}
    source_series = sr.SourceSeriesForSegmentation(str(ct_datasets[0].SeriesInstanceUID))
    for row in segment_rows:
        if row["role"] != ROLE_LESION:
            continue
        groups.append(sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=sr.TrackingIdentifier(uid=generate_uid(), identifier=f"Segment {row['label']}"[:64]),
            referenced_segment=sr.ReferencedSegment(seg_dataset.SOPClassUID, seg_dataset.SOPInstanceUID,
                                                    row["number"], source_series=source_series),
            finding_type=finding, finding_sites=site, measurements=[volume(volumes[row["label"]])]))
    device = sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="TTVPrognosis", manufacturer_name="TTVPrognosis", model_name=__version__))
    report = sr.MeasurementReport(observation_context=sr.ObservationContext(observer_device_context=device),
                                  procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups)
    document = sr.Comprehensive3DSR(
        evidence=[seg_dataset, *ct_datasets], content=report, series_instance_uid=generate_uid(), series_number=9002,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="TTVPrognosis", is_complete=True,
        series_description="TTVPrognosis measurements (research use only)")
    document.SpecificCharacterSet = "ISO_IR 192"
    path = Path(output)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        document.save_as(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(f"Could not write '{path}' ({error.strerror or error}).") from error
    return path
