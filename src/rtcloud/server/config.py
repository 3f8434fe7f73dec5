"""The project server's settings, and finding a project's scripts and config by name.

``rtcloud serve -p NAME`` looks for ``projects/NAME/NAME.py`` and
``projects/NAME/conf/NAME.toml`` (below the current folder, or the sample that ships with
rtcloud); every path can also be given explicitly.

``rtcloud serve --jspsych DIR`` serves a local copy of jsPsych (for labs without internet);
:func:`find_jspsych` finds its browser build inside ``DIR``.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from rtcloud.errors import InvocationError

__all__ = [
    "DEFAULT_UPLOAD_LIMIT",
    "DEFAULT_UPLOAD_TYPES",
    "JSPSYCH_CDN_VERSION",
    "JsPsychDist",
    "ServerConfig",
    "find_jspsych",
    "find_project_dir",
    "is_loopback",
]

#: Largest file the page may upload by default (bytes).
DEFAULT_UPLOAD_LIMIT = 256 * 1024 * 1024
#: File types the page may upload to the server by default: images, masks, tables, arrays,
#: stimulus lists. No scripts or configs (a script may run; a config changes the experiment),
#: and no pickles (loading one runs code).
DEFAULT_UPLOAD_TYPES = (
    ".dcm",
    ".nii",
    ".nii.gz",
    ".mat",
    ".txt",
    ".csv",
    ".tsv",
    ".json",
    ".npy",
    ".npz",
    ".png",
    ".jpg",
    ".jpeg",
)
#: The jsPsych version the feedback page loads from the unpkg CDN without ``--jspsych``.
JSPSYCH_CDN_VERSION = "7.3.4"
#: Browser builds of jsPsych, best first (7 and 8 ship index.browser*.js in ``dist``).
_JSPSYCH_BUNDLES = ("index.browser.min.js", "index.browser.js", "jspsych.js")
#: Where, below the folder given, a browser build may sit.
_JSPSYCH_PLACES = (".", "dist", "jspsych/dist", "node_modules/jspsych/dist")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bundled_projects() -> list[Path]:
    here = Path(__file__).resolve()
    return [
        here.parent.parent / "projects",  # installed wheel: rtcloud/projects
        here.parents[3] / "projects",  # source checkout: <repo>/projects
    ]


@dataclass(frozen=True)
class JsPsychDist:
    """A local jsPsych: the folder served under ``/jspsych/`` and the files in it."""

    root: Path
    #: The browser build, relative to ``root`` (forward slashes).
    script: str
    #: jsPsych's style sheet relative to ``root``, if the folder holds it.
    css: str | None
    #: The version from jsPsych's package.json, if found.
    version: str | None


def _package_version(folder: Path) -> str | None:
    """The version in ``folder/package.json`` if that is jsPsych's own package file."""
    try:
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(meta, dict) and meta.get("name") == "jspsych":
        version = meta.get("version")
        return version if isinstance(version, str) else None
    return None


def find_jspsych(folder: str | Path) -> JsPsychDist:
    """The jsPsych browser build in ``folder`` (for ``rtcloud serve --jspsych``).

    ``folder`` may be the ``dist`` folder of the npm package (``node_modules/jspsych/dist``),
    the package folder itself, or a folder holding ``node_modules/jspsych`` (``npm install
    --prefix FOLDER jspsych@7``), so that an experiment page kept there can load it too.
    Given ``dist`` of the package, the package folder is served (for its ``css/``).

    Raises:
        InvocationError: no such folder, no browser build in it, or jsPsych older than 7.
    """
    given = Path(folder).expanduser()
    path = given.resolve()
    hint = (
        "install it with: npm install --prefix DIR jspsych@7, then pass "
        "--jspsych DIR/node_modules/jspsych/dist"
    )
    if not path.is_dir():
        raise InvocationError(f"--jspsych: {str(given)!r} is not a folder; {hint}")
    root = path
    if path.name == "dist" and _package_version(path.parent) is not None:
        root = path.parent
    for place in _JSPSYCH_PLACES:
        base = (path / place).resolve()
        bundle = next((base / b for b in _JSPSYCH_BUNDLES if (base / b).is_file()), None)
        if bundle is None:
            continue
        version = _package_version(base.parent) or _package_version(base)
        major = version.split(".", 1)[0] if version else ""
        if major.isdigit() and int(major) < 7:
            raise InvocationError(
                f"--jspsych: {str(given)!r} holds jsPsych {version}; the rtcloud plugin needs "
                f"jsPsych 7 or 8; {hint}"
            )
        if not bundle.is_relative_to(root):  # a symlinked package (pnpm): serve its folder
            root = base.parent if _package_version(base.parent) else base
        css = None
        for candidate in (base.parent / "css" / "jspsych.css", base / "jspsych.css"):
            if candidate.is_file() and candidate.resolve().is_relative_to(root):
                css = candidate.resolve().relative_to(root).as_posix()
                break
        return JsPsychDist(root, bundle.relative_to(root).as_posix(), css, version)
    looked = ", ".join(_JSPSYCH_BUNDLES)
    raise InvocationError(
        f"--jspsych: no jsPsych browser build ({looked}) in {str(given)!r} or its dist/ or "
        f"node_modules/jspsych/dist/; {hint}"
    )


def find_project_dir(name: str, project_dir: str | Path | None = None) -> Path:
    """The folder of project ``name``; InvocationError saying where it looked if none."""
    if project_dir is not None:
        path = Path(project_dir).expanduser().resolve()
        if not path.is_dir():
            raise InvocationError(f"project folder {str(path)!r} does not exist")
        return path
    places = [Path.cwd() / "projects" / name, Path.cwd() / name]
    places += [base / name for base in _bundled_projects()]
    # the same folder once, however it was reached (the checkout's projects/ from its root)
    candidates = list(dict.fromkeys(path.resolve() for path in places))
    for path in candidates:
        if (path / f"{name}.py").is_file():
            return path.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise InvocationError(
        f"project {name!r} not found (looked in {looked}); give its folder with --projectDir"
    )


@dataclass
class ServerConfig:
    """Everything ``rtcloud serve`` needs to run one project."""

    project_name: str
    project_dir: Path
    main_script: Path
    init_script: Path
    finalize_script: Path
    config_path: Path
    host: str = "127.0.0.1"
    port: int = 8888
    data_remote: bool = False
    subject_remote: bool = False
    test: bool = False
    password_file: Path | None = None
    state_dir: Path = field(default_factory=lambda: Path.home() / ".rtcloud")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    rpyc_port: int = 0
    grace_period: float = 3.0
    #: A lab's own interface classes, as ``MODULE:CLASS`` (``--interface``).
    interfaces: tuple[str, ...] = ()
    #: A local jsPsych to serve under /jspsych/ (``--jspsych``); None: the page uses a CDN.
    jspsych: Path | None = None
    #: ``--replay``: each Run replays a scan into the folder the project watches.
    replay: bool = False
    #: ``--replay DIR``: the DICOMs to replay (None: a synthetic series).
    replay_source: Path | None = None
    #: Folders the page may upload files into on this server (empty: the project folder).
    upload_dirs: list[Path] = field(default_factory=list)
    #: File types the page may upload to this server (None: the defaults of server.uploads).
    upload_types: list[str] | None = None
    #: Largest file the page may upload, in bytes (None: the default of server.uploads).
    upload_limit: int | None = None
    #: What :func:`find_jspsych` found in ``jspsych`` (set on creation).
    jspsych_dist: JsPsychDist | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.jspsych is not None:
            self.jspsych_dist = find_jspsych(self.jspsych)
            self.jspsych = self.jspsych_dist.root

    @classmethod
    def for_project(
        cls,
        name: str,
        *,
        project_dir: str | Path | None = None,
        main_script: str | Path | None = None,
        init_script: str | Path | None = None,
        finalize_script: str | Path | None = None,
        config: str | Path | None = None,
        **options: object,
    ) -> ServerConfig:
        """Resolve a project's paths the way ``rtcloud serve`` does."""
        folder = find_project_dir(name, project_dir)

        def pick(value: str | Path | None, default: Path) -> Path:
            if value is None:
                return default
            path = Path(value).expanduser()
            return (path if path.is_absolute() else Path.cwd() / path).resolve()

        main = pick(main_script, folder / f"{name}.py")
        cfg = pick(config, folder / "conf" / f"{name}.toml")
        if not main.is_file():
            raise InvocationError(f"main script {str(main)!r} not found (use --mainScript)")
        if not cfg.is_file():
            raise InvocationError(f"config file {str(cfg)!r} not found (use -c/--config)")
        return cls(
            project_name=name,
            project_dir=folder,
            main_script=main,
            init_script=pick(init_script, folder / "initialize.py"),
            finalize_script=pick(finalize_script, folder / "finalize.py"),
            config_path=cfg,
            **options,  # type: ignore[arg-type]
        )

    def check_listen_policy(self) -> None:
        """Refuse to listen beyond loopback without TLS, and --test beyond loopback."""
        loopback = is_loopback(self.host)
        if self.test and not loopback:
            raise InvocationError(
                "--test (user test, password test) is only allowed when the server listens on "
                "127.0.0.1; drop --test and add users with rtcloud add-user"
            )
        if not loopback and self.tls_cert is None and not self.insecure:
            raise InvocationError(
                f"listening on {self.host} without TLS would expose passwords and data; use "
                "--tls auto (or --tls-cert/--tls-key), or --insecure if you really must"
            )
