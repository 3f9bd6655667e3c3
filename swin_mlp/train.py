"""Train a Swin-MLP classifier (the image training command): ``python -m swin_mlp.train``;
kept for its documented name, the command is :mod:`cli.train`."""
if __name__ == "__main__":
    import sys

    from cli.train import main_image
    sys.exit(main_image())
