"""The ``rtcloud`` command: serve, demo, add-user, generate, replay, and the remote services.

``main(argv)`` parses, configures logging (only here), runs the subcommand and returns the
exit status. Errors of rtcloud become one clear line on stderr and a non-zero status, never
a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rtcloud import __version__
from rtcloud.alloc import tune_allocator
from rtcloud.errors import InvocationError, RTCloudError, ValidationError
from rtcloud.redact import RedactSecrets
from rtcloud.server.config import DEFAULT_UPLOAD_LIMIT, DEFAULT_UPLOAD_TYPES

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "main"]

logger = logging.getLogger("rtcloud")

EXIT_ERROR = 1
EXIT_USAGE = 2


def configure_logging(verbose: bool, quiet: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:  # no secret in any line, even at DEBUG
        handler.addFilter(RedactSecrets())
    noisy_loggers = ["rtcloud.rpyc", "uvicorn.error", "watchdog", "rpyc"]
    if not verbose:
        noisy_loggers += ["rtcloud.interfaces", "rtcloud.server.runner"]
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------- help


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default shown unless its help says it; descriptions kept in paragraphs.

    A description's paragraphs (blank-line separated) are wrapped to the terminal, except
    those with indented lines (examples), which are kept as written.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            if any(line.startswith(" ") for line in paragraph.splitlines()):
                paragraphs.append(paragraph)
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text
            and "default" not in text.lower()
            and default is not None
            and default is not False
            and default is not argparse.SUPPRESS
            and (action.option_strings or action.nargs in ("?", "*"))
        ):
            text += " (default: %(default)s)"
        return text


class _DeprecatedUsersFile(argparse.Action):
    """``--password-file`` of serve/add-user: the users file's old option name."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(
            f"rtcloud: note: {option_string} of 'rtcloud {parser.prog.split()[-1]}' is now "
            "--users-file (the old name still works, and will be removed in a later version)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_users_file_argument(parser: argparse.ArgumentParser) -> None:
    """``--users-file`` (and its deprecated old name ``--password-file``)."""
    parser.add_argument(
        "--users-file",
        type=Path,
        metavar="FILE",
        help="the file of user names and password hashes that rtcloud add-user writes "
        "(default: ~/.rtcloud/users.json, or $RTCLOUD_PASSWORD_FILE)",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        dest="users_file",
        metavar="FILE",
        action=_DeprecatedUsersFile,
        help="old name of --users-file (deprecated; the services' --password-file is the file "
        "holding one password)",
    )


# ---------------------------------------------------------------------------- serve


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--projectName",
        required=True,
        metavar="NAME",
        help="project name: finds projects/NAME/NAME.py and projects/NAME/conf/NAME.toml",
    )
    parser.add_argument("-d", "--projectDir", help="project folder (default: projects/NAME)")
    parser.add_argument("-m", "--mainScript", help="main script (default: NAME.py)")
    parser.add_argument(
        "-i", "--initScript", help="session set-up script (default: initialize.py)"
    )
    parser.add_argument("-f", "--finalizeScript", help="session end script (default: finalize.py)")
    parser.add_argument("-c", "--config", help="experiment config (default: conf/NAME.toml)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8888, help="web port (default 8888)")
    parser.add_argument(
        "-rd", "--dataRemote", action="store_true", help="data comes from a remote data service"
    )
    parser.add_argument(
        "-rs",
        "--subjectRemote",
        action="store_true",
        help=(
            "feedback needs a presentation peer (subject service, feedback client or the "
            "/feedback page); calls fail at once while none is connected"
        ),
    )
    parser.add_argument(
        "-r", "--remote", action="store_true", help="both --dataRemote and --subjectRemote"
    )
    parser.add_argument(
        "--test",
        action="store_true",
        help="also accept user test / password test (127.0.0.1 only)",
    )
    add_users_file_argument(parser)
    parser.add_argument(
        "--tls", choices=["auto"], help="auto: make (once) and use a self-signed certificate"
    )
    parser.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    parser.add_argument(
        "--insecure", action="store_true", help="allow listening beyond 127.0.0.1 without TLS"
    )
    parser.add_argument(
        "--replay",
        nargs="?",
        const="",
        metavar="DIR",
        help="no scanner at hand: each Run replays a scan into the folder the project watches "
        "(the config's imgDir, dicomNamePattern, numVolumes, trInterval), a synthetic one, "
        "or the DICOM files of DIR; that scan's files from an earlier run are deleted first",
    )
    parser.add_argument(
        "--upload-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="a folder the page's Upload Files tab may put files into on this computer "
        "(repeat for more; default: the project folder)",
    )
    parser.add_argument(
        "--upload-types",
        metavar="EXTS",
        help="file types the page may upload to this computer, comma separated (default: "
        + ",".join(DEFAULT_UPLOAD_TYPES)
        + "); uploads to the scanner computer follow the data service's -f",
    )
    parser.add_argument(
        "--upload-limit",
        type=float,
        default=DEFAULT_UPLOAD_LIMIT / 2**20,
        metavar="MB",
        help="largest file the page may upload, in MB",
    )
    parser.add_argument(
        "--interface",
        action="append",
        metavar="MODULE:CLASS",
        help="also serve a lab's own interface class (its @expose methods); with --dataRemote "
        "it runs in the data service, started with the same option (docs/custom-interfaces.md)",
    )
    parser.add_argument(
        "--jspsych",
        type=Path,
        metavar="DIR",
        help="serve this local jsPsych (e.g. node_modules/jspsych/dist) under /jspsych/ for "
        "the jsPsych feedback page; without it the page loads jsPsych from unpkg.com",
    )


def server_config_from_args(args: argparse.Namespace) -> object:
    from rtcloud.server.config import ServerConfig

    tls_cert, tls_key = args.tls_cert, args.tls_key
    if args.tls == "auto":
        from rtcloud.tls import ensure_self_signed

        tls_cert, tls_key, _ = ensure_self_signed(Path.home() / ".rtcloud" / "tls")
    elif (tls_cert is None) != (tls_key is None):
        raise InvocationError("give both --tls-cert and --tls-key (or --tls auto)")
    return ServerConfig.for_project(
        args.projectName,
        project_dir=args.projectDir,
        main_script=args.mainScript,
        init_script=args.initScript,
        finalize_script=args.finalizeScript,
        config=args.config,
        host=args.host,
        port=args.port,
        data_remote=args.dataRemote or args.remote,
        subject_remote=args.subjectRemote or args.remote,
        test=args.test,
        password_file=args.users_file,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure=args.insecure,
        jspsych=args.jspsych,
        upload_dirs=[d.expanduser().resolve() for d in args.upload_dir or []],
        upload_types=[t.strip() for t in args.upload_types.split(",") if t.strip()]
        if args.upload_types
        else None,
        upload_limit=int(args.upload_limit * 2**20),
        replay=args.replay is not None,
        replay_source=Path(args.replay).expanduser().resolve() if args.replay else None,
        interfaces=tuple(args.interface or ()),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from rtcloud.server.config import ServerConfig
    from rtcloud.server.server import ProjectServer

    config = server_config_from_args(args)
    assert isinstance(config, ServerConfig)
    server = ProjectServer(config)
    print(f"rtcloud serving project {config.project_name!r} at {server.url}", flush=True)
    if config.tls_cert is not None:
        from rtcloud.tls import fingerprint_of_file

        fingerprint = fingerprint_of_file(config.tls_cert)
        print(f"TLS certificate SHA-256 fingerprint: {fingerprint}", flush=True)
        print(f"  services connect with: --fingerprint {fingerprint}", flush=True)
    print(f"open this link to log in (works once): {server.login_url}", flush=True)
    dist = config.jspsych_dist
    if dist is None:
        source = "jsPsych from unpkg.com; offline labs: --jspsych DIR"
    else:
        source = f"jsPsych {dist.version or '(version unknown)'} from {dist.root}"
    print(
        f"participant feedback page: {server.url}feedback (jsPsych: {server.url}feedback/jspsych, "
        f"{source})",
        flush=True,
    )
    if config.test:
        print("test mode: user 'test', password 'test' also accepted", flush=True)
    if server.simulator is not None:
        print(server.replay_note(), flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    print("rtcloud: server stopped", flush=True)
    return 0


# ---------------------------------------------------------------------------- users


def cmd_add_user(args: argparse.Namespace) -> int:
    from rtcloud.server.auth import PasswordFile, default_password_file

    path = args.users_file or default_password_file()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise InvocationError(
                "no terminal to ask for the password; pipe it in with --password-stdin"
            )
        password = getpass.getpass(f"Password for {args.username}: ")
        again = getpass.getpass("Retype the password: ")
        if password != again:
            raise InvocationError("the two passwords differ; nothing was changed")
    try:
        PasswordFile(path).set_password(args.username, password)
    except ValidationError as exc:  # a mistake on the command line, like the ones above
        raise InvocationError(f"{exc}; nothing was changed") from None
    print(f"user {args.username!r} saved in {path}")
    return 0


# ---------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from rtcloud.demo import run_demo

    return run_demo(
        volumes=args.volumes,
        tr=args.tr,
        port=args.port,
        local=args.local,
        keep_open=args.keep_open,
        workdir=args.workdir,
        services=not args.in_process,
        layout=args.layout,
    )


# ---------------------------------------------------------------------------- parser


SERVE_DESCRIPTION = """\
Run one experiment project: its web page (Run, Session, Settings, Data Plots, Quality, Log,
Upload Files), the scripts it starts, and the hub that data and subject services connect to.
Prints the page's address and a one-time login link.

examples:
  rtcloud serve -p sample --replay           the sample project, with a simulated scanner
  rtcloud serve -p sample --test             the sample project, user test/test allowed
  rtcloud serve -p myexp --host 0.0.0.0 --tls auto --remote   for services on other computers
"""

DEMO_DESCRIPTION = """\
Generate a synthetic scan, start a server for the sample project (and, by default, a data
service and a subject service as separate processes), replay the scan into a scanner folder
at TR pace and run the sample script through the server. Prints a line per volume, and a
login link to watch the plot fill up live.
"""

ADD_USER_DESCRIPTION = """\
Add a user who may log in to the web page and connect services, or change a user's
password. The password is asked twice in a terminal, or read from standard input with
--password-stdin (never from the command line).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtcloud",
        description="Real-time fMRI: scanner volumes to your script, feedback to the participant.",
        formatter_class=HelpFormatter,
        epilog="'rtcloud COMMAND --help' describes a command and its options.",
    )
    parser.add_argument("--version", action="version", version=f"rtcloud {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run a project's server and web page", description=SERVE_DESCRIPTION
    )
    add_server_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo",
        help="replay a synthetic scan through the sample project",
        description=DEMO_DESCRIPTION,
    )
    demo.add_argument("--volumes", type=int, default=20, help="volumes to replay")
    demo.add_argument("--tr", type=float, default=1.0, help="seconds between volumes")
    demo.add_argument(
        "--port", type=int, default=8888, help="web port (default 8888; any free port if taken)"
    )
    demo.add_argument("--local", action="store_true", help="no server: run the script on its own")
    demo.add_argument(
        "--layout",
        choices=["mosaic", "enhanced", "slices", "enhanced-slices"],
        default="mosaic",
        help="how the simulated scanner writes: mosaic (Siemens VB/VE), enhanced "
        "(Siemens XA, Philips multi-frame), slices (one file per slice: XA, GE, Philips), "
        "enhanced-slices (one one-frame enhanced file per slice: Siemens XA)",
    )
    demo.add_argument(
        "--in-process",
        action="store_true",
        help="serve data and feedback inside the server (default: separate service processes)",
    )
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="keep the server running after the run (Ctrl-C ends)",
    )
    demo.add_argument(
        "--workdir", type=Path, help="folder for the demo's files (default: a temporary one)"
    )
    demo.set_defaults(func=cmd_demo)

    add_user = sub.add_parser(
        "add-user", help="add a user or change a password", description=ADD_USER_DESCRIPTION
    )
    add_user.add_argument("-u", "--username", required=True, help="the user name to add or change")
    add_users_file_argument(add_user)
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_user.set_defaults(func=cmd_add_user)

    from rtcloud.services import data_service, subject_service
    from rtcloud.simulate.cli import add_generate_parser, add_replay_parser

    data_service.add_parser(sub)
    subject_service.add_parser(sub)
    add_generate_parser(sub)
    add_replay_parser(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    configure_logging(args.verbose, args.quiet)
    tune_allocator()
    try:
        result: int = args.func(args)
        return result
    except InvocationError as exc:
        print(f"rtcloud: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RTCloudError as exc:
        print(f"rtcloud: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("rtcloud: interrupted", file=sys.stderr)
        return 130
