"""BIDS for real-time fMRI: volumes as BIDS incrementals, runs, datasets, OpenNeuro.

| module | owns |
| --- | --- |
| ``common`` | entities, file names, dataset defaults, unit fixes, append compatibility checks |
| ``incremental`` | :class:`BidsIncremental`: volume(s) + entities + sidecar; by-value wire form |
| ``run`` | :class:`BidsRun`: a run's volumes without copies; constant-time append |
| ``archive`` | :class:`BidsArchive`: a dataset on disk, read with pybids, written by runs |
| ``dicom`` | a DICOM volume as a BidsIncremental (dcm2niix's image and sidecar fields) |
| ``openneuro`` | :class:`OpenNeuroCache`: downloads from OpenNeuro's public S3 bucket (boto3) |

Everything but ``openneuro`` is pure (no threads, sockets, clocks or event loops); pybids and
pandas load only when first used. The streams that hand incrementals to scripts live in
:mod:`rtcloud.interfaces.bids`.
"""
