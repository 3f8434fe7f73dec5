"""Watching scanner folders: which files count, when a file is complete, waiting for one."""
