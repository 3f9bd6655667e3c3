"""SimMIM masks and reconstructions: ``python -m simmim.visualize``;
kept for its documented name, the command is :mod:`cli.visualize`."""
if __name__ == "__main__":
    import sys

    from cli.visualize import main
    sys.exit(main())
