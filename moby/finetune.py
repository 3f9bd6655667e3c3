"""MoBY fine-tuning: ``python -m moby.finetune``; kept for its documented name, the command is :mod:`cli.finetune`."""
from moby.config import FinetuneConfig  # noqa: F401 -- run configs of earlier versions name moby.finetune.FinetuneConfig

if __name__ == "__main__":
    import sys

    from cli.finetune import main_moby
    sys.exit(main_moby())
