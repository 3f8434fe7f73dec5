"""DICOM and NIfTI handling: reading, completeness, anonymization, mosaics, TR timing."""
