"""Start OllamaStack: `python app.py [--share] [--log-level debug]`. Settings come from the
environment and .env."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OllamaStack: a private agent over Ollama.")
    parser.add_argument("--share", action="store_true", help="also serve a public share link")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="how much the app logs (default: info)",
    )
    args = parser.parse_args(argv)

    from ollamastack.errors import SettingsError
    from ollamastack.settings import load_settings

    try:
        settings = load_settings(**({"share": True} if args.share else {}))
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    from ollamastack.web.app import build_app, launch, startup_errors

    if errors := startup_errors(settings):  # settings the app cannot serve together
        print("\n".join(errors), file=sys.stderr)
        return 2

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    launch(build_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
