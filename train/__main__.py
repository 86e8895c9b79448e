"""`python -m train`: see train/cli.py; `python -m train pretrain`: see train/pretrain.py."""
import sys

from train.cli import main


def dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "pretrain":
        from train.pretrain import main as pretrain_main

        return pretrain_main(argv[1:])
    return main(argv)


if __name__ == "__main__":
    sys.exit(dispatch(sys.argv[1:]))
