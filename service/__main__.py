"""``python -m service``: the model server on uvicorn (one worker; scale with replicas)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from pydantic import ValidationError

from service.settings import Settings

EXIT_BAD_CONFIG = 2


def _env_help() -> str:
    lines = ["environment variables:"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "unset"
        description = f"  {field.description}" if field.description else ""
        lines.append(f"  {field.alias or name.upper():<24} default {default}{description}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the MLflow registered model the alias points to (or MODEL_VERSION).",
        epilog=_env_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [f"{err['loc'][0] if err['loc'] else '?'}: {err['msg']}" for err in exc.errors()]
        sys.stderr.write("error: invalid environment: " + "; ".join(problems) + "\n")
        return EXIT_BAD_CONFIG

    # Start-up is mostly imports (FastAPI, pandas, MLflow, scikit-learn, skops: seconds of CPU)
    # and building the model, which create millions of long-lived objects: the cyclic collector
    # would walk them again and again for nothing (~7% of the start-up's CPU here). It is
    # switched back on, after one full pass and a freeze, once the first load has finished
    # (service.app), whether it worked or not.
    gc.disable()

    import uvicorn

    from mlkube.core.registry import apply_client_defaults
    from service.app import create_app

    apply_client_defaults()

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,  # our logging setup above, one format for every logger
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",  # /metrics counts requests; logs cost CPU
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
