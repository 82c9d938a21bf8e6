"""`python -m mock_server` and the `mock-llm-sse` command."""

from __future__ import annotations

import gc
import os


def main() -> None:
    """Run the command line, its modules loaded with the cyclic garbage collector paused: loading them
    makes some 50,000 objects that live as long as the process, and the hundred collections they set
    off on the way found nothing to free while taking a tenth of `serve`'s start-up. What they made is
    then frozen (`gc.freeze()`), out of later collections' way, as the server does (http/collector.py).

    Pydantic's plugins are left out unless PYDANTIC_DISABLE_PLUGINS is set: finding them reads every
    installed package's metadata as the first model is built (some 5 ms, more in a large environment),
    and the only models here are the scenario model's, which no plugin of the user's is meant for."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    enabled = gc.isenabled()
    gc.disable()
    try:
        from mock_server.cli import main as command_line
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    command_line(prog_name="mock-llm-sse")


if __name__ == "__main__":
    main()
