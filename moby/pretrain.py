"""MoBY pretraining: ``python -m moby.pretrain``;
kept for its documented name, the command is :mod:`cli.pretrain`."""
if __name__ == "__main__":
    import sys

    from cli.pretrain import main_moby
    sys.exit(main_moby())
