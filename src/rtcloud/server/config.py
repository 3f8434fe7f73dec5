"""The project server's settings, and finding a project's scripts and config by name.

``rtcloud serve -p NAME`` looks for ``projects/NAME/NAME.py`` and
``projects/NAME/conf/NAME.toml`` (below the current folder, or the sample that ships with
rtcloud); every path can also be given explicitly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from rtcloud.errors import InvocationError

__all__ = ["ServerConfig", "find_project_dir", "is_loopback"]


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


def find_project_dir(name: str, project_dir: str | Path | None = None) -> Path:
    """The folder of project ``name``; InvocationError saying where it looked if none."""
    if project_dir is not None:
        path = Path(project_dir).expanduser().resolve()
        if not path.is_dir():
            raise InvocationError(f"project folder {str(path)!r} does not exist")
        return path
    candidates = [Path.cwd() / "projects" / name, Path.cwd() / name]
    candidates += [base / name for base in _bundled_projects()]
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
