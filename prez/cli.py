"""Command-line entry points: `prez-server ./prez.conf` and `prez-cluster`."""

from __future__ import annotations

import os
import sys

from prez.config import PARAMS, Config
from prez.errors import ConfigError
from prez.storage.durable import make_dirs


def server_main(argv: list[str] | None = None) -> None:
    """prez-server [/path/to/prez.conf] [--key value ...], as redis-server."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-v", "--version"):
        from prez import __version__

        print(f"Prez server v={__version__}")
        return
    if args and args[0] in ("-h", "--help"):
        print("Usage: prez-server [/path/to/prez.conf] [--key value ...]")
        return
    path = ""
    if args and not args[0].startswith("--"):
        path, args = args[0], args[1:]
    try:
        config = Config.load(path) if path else Config()
        apply_overrides(config, args)
        config.finish()
        make_dirs(config["dir"], fsync=config["raft-log-fsync"])
        os.chdir(config["dir"])
    except ConfigError as e:
        print(f"*** FATAL CONFIG FILE ERROR *** {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(
            f"*** FATAL *** cannot use dir '{config['dir']}': {e.strerror}",
            file=sys.stderr,
        )
        sys.exit(1)
    from prez.server.app import run

    sys.exit(run(config))


def apply_overrides(config: Config, args: list[str]) -> None:
    """Command-line `--key value` pairs, checked like config file lines."""
    i = 0
    while i < len(args):
        key = args[i]
        if not key.startswith("--") or i + 1 >= len(args):
            raise ConfigError("<command line>", None, key, "expected --key value")
        name = key[2:].lower()
        param = PARAMS.get(name)
        if param is None:
            raise ConfigError("<command line>", None, name, "unknown configuration key")
        try:
            config.values[name] = (
                [param.parse(args[i + 1])] if param.multi else param.parse(args[i + 1])
            )
        except ValueError as e:
            raise ConfigError(
                "<command line>", None, name, f"bad value '{args[i + 1]}': {e}"
            )
        i += 2


def cluster_main(argv: list[str] | None = None) -> None:
    from prez.localcluster import main

    sys.exit(main(sys.argv[1:] if argv is None else argv))
