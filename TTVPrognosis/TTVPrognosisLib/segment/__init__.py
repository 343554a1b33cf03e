"""Making and editing segmentations: one-click lesions and the edits the review tools make."""
