"""Fine-tune a pretrained backbone: ``python -m simmim.finetune``;
kept for its documented name, the command is :mod:`cli.finetune`."""
if __name__ == "__main__":
    import sys

    from cli.finetune import main
    sys.exit(main())
