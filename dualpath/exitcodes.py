"""The exit codes of every dualpath command (docs/design.md, "Exit codes and failure behaviour"); no imports, so the
light runtime (numpy + OpenCV, never torch) uses them too.

    OK           0    done (python -m runtime: also Ctrl-C / SIGTERM / q, the normal end of a live demo)
    VERDICT      1    the command ran and its answer is no: an artifact past its drift budget, accuracy control not
                      met, a run that failed (NaN / inf loss in training, a live source lost and not back after
                      --retries, a video that stopped decoding)
    BAD_INPUT    2    bad input or environment: a bad command line, unreadable, corrupt or mismatched files, an output
                      that cannot be written, a missing package; one line names the path and what to do
    INTERRUPTED  130  interrupted (Ctrl-C) before the command finished (128 + SIGINT, as shells report it);
                      `train --resume` continues. SIGTERM is an interruption too (dualpath.processes): 130, not
                      143, so a caller tells "stopped, resumable" from a crash by one code
"""

OK = 0
VERDICT = 1
BAD_INPUT = 2
INTERRUPTED = 130
