"""Pictures of the shifted-window mask: ``python -m core.tools.visualize_mask``;
kept for its documented name, the command is :mod:`cli.visualize_mask`."""
if __name__ == "__main__":
    import sys

    from cli.visualize_mask import main
    sys.exit(main())
