"""The defaults of a fit, written once (plain numbers: the command line reads them without loading numpy)."""

#: robust loss of the residuals: "huber" or "mse"
LOSS = "huber"
#: the Huber threshold on residuals of log(loss): Hoffmann et al.'s 1e-3
HUBER_DELTA = 1e-3
#: residuals of log(target) ("log") or of the target ("linear")
SPACE = "log"
#: seed of random starts and bootstrap resamples
SEED = 0
#: starts that successive halving runs to full convergence
CONVERGE = 32
#: successive halving converges more of the starts it stopped while fewer than this many reached the best optimum
CONFIRM = 8
#: steps per start at most
MAX_ITER = 400
#: tables with more runs than this rank the start grid on a seeded subset of this many runs
EXPLORE_ROWS = 2048
#: level of intervals: bootstrap intervals, and held-out prediction intervals behind a validation verdict
LEVEL = 0.95
#: relative objective gap within which an optimum counts as near the best (diagnose)
NEAR = 0.01
