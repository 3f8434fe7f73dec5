"""Synthetic scanner: generate Siemens-style mosaic DICOM series and replay them at TR pace."""
