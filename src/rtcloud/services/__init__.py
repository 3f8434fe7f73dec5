"""The remote service processes: the scanner-side data service and the subject service."""
