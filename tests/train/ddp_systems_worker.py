"""Train every system, one after another, in one process group (torchrun, gloo, CPU).

python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_systems_worker.py \
    OUT SIM ARGS_JSON

``ARGS_JSON`` maps each system to its ``cryomotion train`` arguments (after the system's
name); each run goes to ``OUT/<system>``. The arguments are parsed by the CLI's own parser
and the run is ``train.run.train_run``, as ``cryomotion train`` does; one launch for all
systems spares the test a torchrun start (and its imports) per system.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryomotion.cli.train import add_arguments, build_config
from cryomotion.train.distributed import init_distributed, shutdown
from cryomotion.train.run import train_run

if __name__ == "__main__":
    out, arguments = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    context = init_distributed("cpu")
    try:
        for system, system_arguments in arguments.items():
            parser = argparse.ArgumentParser()
            add_arguments(parser)
            args = parser.parse_args([system, *system_arguments, "-o", str(out / system)])
            train_run(build_config(args), args.output, progress=False, context=context)
    finally:
        shutdown(context)
