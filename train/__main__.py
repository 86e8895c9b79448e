"""`python -m train`, `python -m train compare`, `python -m train pretrain`: train.cli.main (its COMMANDS table)."""
import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
