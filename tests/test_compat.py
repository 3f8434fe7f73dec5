"""RT-Cloud scripts run unchanged: rtCommon module names, sys.path tricks, the sample project."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

RTCOMMON_NAMES = {
    "rtCommon.clientInterface": ["ClientInterface"],
    "rtCommon.dataInterface": ["DataInterface", "uploadFilesToCloud", "downloadFolderFromCloud"],
    "rtCommon.subjectInterface": ["SubjectInterface"],
    "rtCommon.webDisplayInterface": ["WebDisplayInterface"],
    "rtCommon.imageHandling": [
        "readRetryDicomFromDataInterface",
        "convertDicomImgToNifti",
        "dicomTimeToNextTr",
        "anonymizeDicom",
        "readDicomFromBuffer",
    ],
    "rtCommon.utils": [
        "loadConfigFile",
        "stringPartialFormat",
        "calcAvgRoundTripTime",
        "writeFile",
    ],
    "rtCommon.structDict": ["StructDict"],
    "rtCommon.errors": [
        "ValidationError",
        "StateError",
        "RequestError",
        "RTError",
        "NotImplementedError",
    ],
    "rtCommon.fileWatcher": ["FileWatcher"],
    "rtCommon.subjectService": ["SubjectService"],
    "rtCommon.wsRemoteService": ["WsRemoteService", "parseConnectionArgs"],
    "rtCommon.dicomToBidsService": ["dicomToBidsInc"],
}


@pytest.mark.parametrize("module", sorted(RTCOMMON_NAMES))
def test_rtcommon_modules_export_rtcloud_names(module):
    mod = importlib.import_module(module)
    for name in RTCOMMON_NAMES[module]:
        assert hasattr(mod, name), f"{module} lacks {name}"


def test_errors_are_the_same_classes():
    from rtcloud.errors import ValidationError
    from rtCommon.errors import ValidationError as Compat

    assert Compat is ValidationError


def test_script_that_appends_its_own_root_still_imports_rtcloud(tmp_path):
    # An RT-Cloud checkout next to the script holds its own rtCommon folder; appending the
    # root (as RT-Cloud scripts do) must not shadow the installed package.
    fake_root = tmp_path / "rt-cloud"
    (fake_root / "rtCommon").mkdir(parents=True)
    (fake_root / "rtCommon" / "__init__.py").write_text("raise ImportError('old rtCommon')\n")
    script = fake_root / "projects" / "mine" / "mine.py"
    script.parent.mkdir(parents=True)
    script.write_text(
        textwrap.dedent("""
        import os, sys
        currPath = os.path.dirname(os.path.realpath(__file__))
        rootPath = os.path.dirname(os.path.dirname(currPath))
        sys.path.append(rootPath)
        from rtCommon.clientInterface import ClientInterface
        from rtCommon.utils import stringPartialFormat
        ci = ClientInterface(yesToPrompts=True)
        print(stringPartialFormat("001_{SCAN:06d}_{TR:06d}.dcm", "SCAN", 13))
        print(ci.isUsingProjectServer())
    """)
    )
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["001_000013_{TR:06d}.dcm", "False"]


def test_sample_session_scripts_copy_files_both_ways(tmp_path):
    """The sample's initialize.py / finalize.py (upload and download helpers), local mode."""
    import shutil

    project = tmp_path / "sample"
    shutil.copytree(REPO / "projects" / "sample", project, ignore=shutil.ignore_patterns("tmp"))
    results = tmp_path / "results"
    results.mkdir()
    (results / "sub_run1_values.txt").write_text("0.5\n")
    config = project / "conf" / "sample.toml"
    config.write_text(
        config.read_text().replace('resultsDir = "results"', f'resultsDir = "{results}"')
    )
    run = [sys.executable, "-u"]
    out = subprocess.run(
        [*run, str(project / "initialize.py"), "-y", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    copied = project / "tmp" / "cloud_directory" / "session_info.txt"
    assert copied.read_text() == "subject subject01 day 1\n"
    out = subprocess.run(
        [*run, str(project / "finalize.py"), "-y", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    back = project / "tmp" / "stimulus_directory" / "results" / "sub_run1_values.txt"
    assert back.read_text() == "0.5\n"


@pytest.mark.parametrize("trailing", [False, True])
def test_folder_copies_keep_or_drop_the_folders_name_as_rt_cloud_did(tmp_path, trailing):
    """RT-Cloud cut ``os.path.dirname(srcDir)`` from each file's path, both ways: ``stim``
    arrives as ``out/stim/...`` and ``stim/`` as its contents. Ours dropped the name on the
    way to the data side and kept it on the way back, whatever the caller wrote."""
    from rtcloud.interfaces.data import DataInterface
    from rtcloud.interfaces.transfer import downloadFolderFromCloud, uploadFolderToCloud

    stim = tmp_path / "src" / "stim"
    (stim / "sub").mkdir(parents=True)
    (stim / "a.txt").write_text("a")
    (stim / "sub" / "b.txt").write_text("b")
    data = DataInterface(allowedDirs=[str(tmp_path)], allowedFileTypes=[".txt"])
    src = str(stim) + (os.sep if trailing else "")
    expected = ["a.txt", "sub/b.txt"] if trailing else ["stim/a.txt", "stim/sub/b.txt"]

    def tree(root):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    downloadFolderFromCloud(data, src, str(tmp_path / "down"))
    assert tree(tmp_path / "down") == expected
    uploadFolderToCloud(data, src, str(tmp_path / "up"))
    assert tree(tmp_path / "up") == expected
