"""Train an image classifier: ``python -m core.train``;
kept for its documented name, the command is :mod:`cli.train`."""
if __name__ == "__main__":
    import sys

    from cli.train import main_image
    sys.exit(main_image())
