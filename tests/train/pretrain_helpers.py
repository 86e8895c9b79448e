"""What the pretraining tests share: the tiny command line of `python -m train pretrain` (a DenseNet of a few
thousand weights, chunks of 24 scenes, one thread), so each test file adds only what it is about."""

TINY = ["--backbone", "densenet_tiny", "--chunk", "24", "--held-out", "20", "--batch-size", "12",
        "--device", "cpu", "--threads", "1", "--quiet"]
