"""Canary analysis. The statistics (`verdict`, `histogram`, `latency`, `error_rate`, `paired_scores`)
are pure functions, standard library only (no I/O, Kubernetes or HTTP): observed data in, a
Pass / Fail / Inconclusive verdict per metric out. `providers/` fetch the data (Prometheus, the
paired judge); `run.analyse` puts them together for one canary step.

The controller calls the tests on every reconcile with data CUMULATED since the canary began and acts
on the first Pass or Fail, so every test is sequential and anytime-valid: a likelihood ratio or betting
wealth that is a (super)martingale under the hypothesis it refutes, compared with 1/alpha or 1/beta
(Ville's inequality), so the error bounds hold however often it is evaluated and whenever it stops. Per
metric, by default 5% each:

* false promotion ``P(Pass | the tolerated regression or worse) <= alpha``;
* false rollback ``P(Fail | canary behaves like stable) <= beta``, split between the rules of a metric
  when several are set (latency maxSeconds + maxIncreasePercent, judge maxDrop + minScore). Across
  metrics the controller rolls back on any Fail: the total false rollback is at most the sum.

Methods (longer, with assumptions and the benchmark: bench/README.md):

* Latency vs stable (``max_increase_percent`` = d): histograms only reveal counts above bucket bounds,
  so the quantile is tested through the share of requests slower than a bound ``x``: the largest one at
  or below ``(1 + d)`` x stable's quantile. Given whether a request was slower than ``x``, the revision
  that served it is a coin flip with probability ``n_c / (n_c + n_s)`` when both revisions are alike,
  whatever stable's own share is; a canary slowed down by ``1 + d`` skews the slow requests towards the
  canary by ``r = S(x / (1 + d)) / S(x)``, S being stable's survival function interpolated inside
  buckets (monotone cubic in log-log). Wald's likelihood ratio of these coin flips decides (Fail
  ``>= 1/beta``, Pass ``<= alpha``). A tail guard at the next bound up can fail the canary and holds a
  Pass while it points to a regression. Assumption: near the quantile, a regression acts like a stretch
  of the latency distribution (exact for proportional slowdowns; with coarse buckets such as vLLM/NIM's
  2.5 s -> 5 s, regressions confined to the slowest few percent are only partly seen).
* Latency ceiling (``max_seconds``) and error rate (``max_percent``): Wald's binomial likelihood ratio
  on the canary's share above the ceiling / of errors between ``bad = limit`` (``1 - quantile`` for
  latency) and ``good = limit / 2``; a ceiling between bucket bounds is bracketed conservatively.
* Judge (paired 0-5 scores): exact nonparametric testing by betting on ``D = canary - stable`` per
  prompt. Pass when ``prod(1 + l (D + max_drop)) >= 1/alpha`` (refutes any distribution with a mean drop
  >= max_drop); Fail when ``prod(1 + f sign(-D)) >= 1/beta`` (refutes "canary equals stable", under
  which the sign of D is a fair coin given |D|; ``f = tanh(theta |D|)``, the Kelly bet against the
  least favourable drop of max_drop). Bets use earlier pairs only (and the Fail bet |D| itself), so
  pairs must be passed in judging order (append-only). ``min_score``: the same mean test on canary
  scores against the floor.

Never Pass without data: missing inputs (Prometheus or judge down), empty windows and too little stable
reference data are Inconclusive and the message says which. Tolerances of 0 cannot be certified by a
sequential test and are raised to a small minimum (1% latency increase, 0.05 judge points).
"""
