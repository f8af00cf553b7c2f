"""Beam pipeline options for the tools' ``--engine beam`` (``docs/beam.md``).

Everything after a standalone ``--`` on a tool's command line is handed to Beam unchanged
(``--runner=DataflowRunner --project=... --region=... --temp_location=gs://...``). Without
``--runner``, the pipeline runs here on Beam's local runner in multi-processing mode
(``DirectRunner`` -> the FnApiRunner with ``--direct_num_workers`` SDK worker processes): no
network, no Prism binary.

Example:

>>> options = pipeline_options([], workers=2)
>>> options.get_all_options()["direct_num_workers"], options.get_all_options()["runner"]
(2, 'DirectRunner')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mclcr_keras.errors import UsageError

LOCAL_RUNNER = "DirectRunner"
# Beam's local runner logs every SDK harness start and stop at INFO.
_NOISY_LOGGERS = ("apache_beam", "__main__")
_RELAY = "apache_beam.runners.portability.local_job_service"


def missing_beam_message() -> str:
    return ("--engine beam needs Apache Beam: pip install 'mclcr_keras[beam]' "
            "(or pip install 'apache-beam>=2.69' tensorflow-hub)")


def require_beam() -> None:
    """Raises `UsageError` with the install command when Apache Beam is not installed."""
    root = logging.getLogger()  # Beam's import warns there that BigQuery's client is absent
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise UsageError(missing_beam_message()) from None
    finally:
        root.setLevel(level)


def _given(args: Sequence[str], name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in args)


def pipeline_options(args: Sequence[str], workers: int, verbose: bool = False):
    """``PipelineOptions`` from the arguments after ``--``.

    Args:
        args: Beam's own flags, passed through unchanged.
        workers: SDK worker processes of the local runner (``--direct_num_workers``), used only
            when ``args`` names no runner and no ``--direct_num_workers``.
        verbose: keep the SDK workers' INFO lines (else ``--default_sdk_harness_log_level``
            ERROR, unless ``args`` sets it).

    Raises:
        UsageError: Beam is not installed, or an argument Beam does not know.
    """
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(args)
    if not _given(args, "runner"):
        args.append(f"--runner={LOCAL_RUNNER}")
        if not _given(args, "direct_running_mode"):
            args.append("--direct_running_mode=multi_processing")
        if not _given(args, "direct_num_workers"):
            args.append(f"--direct_num_workers={int(workers)}")
    if not verbose and not _given(args, "default_sdk_harness_log_level"):
        args.append("--default_sdk_harness_log_level=ERROR")
    # Beam warns once per parse about an unknown flag; the UsageError below says it once.
    parser_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)
    try:
        options = PipelineOptions(args)
        unknown = [a for a in options.get_all_options(retain_unknown_options=True,
                                                       drop_default=True)
                   if a not in options.get_all_options()]
    finally:
        parser_log.setLevel(level)
    if unknown:
        raise UsageError(f"unknown Beam pipeline option {unknown[0]!r} after --")
    return options


def quiet_beam(verbose: bool = False) -> None:
    """Beam's INFO chatter (harness start/stop lines) hidden unless ``verbose``."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # The local runner relays every worker's warnings through this logger, wrapped in a log
    # proto; a failed input's reason is in failures.csv (the dead-letter output) already.
    logging.getLogger(_RELAY).setLevel(logging.DEBUG if verbose else logging.ERROR)
