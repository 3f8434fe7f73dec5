"""RT-Cloud's module names, so that existing experiment scripts import and run unchanged.

Each module here only re-exports rtcloud objects under the names RT-Cloud scripts use
(``from rtCommon.clientInterface import ClientInterface``). New code may import
:mod:`rtcloud` directly.
"""
