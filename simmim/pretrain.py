"""SimMIM pretraining: ``python -m simmim.pretrain``;
kept for its documented name, the command is :mod:`cli.pretrain`."""
if __name__ == "__main__":
    import sys

    from cli.pretrain import main_simmim
    sys.exit(main_simmim())
