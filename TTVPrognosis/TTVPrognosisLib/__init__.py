"""TTVPrognosis core: total tumour volume, response and prognosis from lesion segmentations.

Everything here runs without the Slicer GUI. Only :mod:`TTVPrognosisLib.mrml` imports ``slicer`` (the
MRML classes that exist in both the Slicer application and the ``slicer-core`` wheel).
"""

__version__ = "0.1.0"
