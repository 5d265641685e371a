"""Canary analysis. The statistics (`verdict`, `histogram`, `latency`, `error_rate`, `paired_scores`)
are pure functions, standard library only (no I/O, Kubernetes or HTTP): observed data in, a
Pass / Fail / Inconclusive verdict per metric out. `providers/` fetch the data (Prometheus, the
paired judge); `run.analyse` puts them together for one canary step.

The controller looks on every reconcile (every 2 s) and acts on the first Pass or Fail, so every test is
sequential and anytime-valid: a likelihood ratio or betting wealth that is a (super)martingale under the
hypothesis it refutes, built only from data available before each of its steps (a predictable
plug-in), compared with 1/alpha or 1/beta (Ville's inequality), so the error bounds hold however often
it is evaluated and whenever it stops. Per metric, by default 5% each, and exactly what each refutes:

* false promotion ``P(Pass | the tolerated regression or worse) <= alpha``;
* false rollback ``P(Fail | the canary at its "good" level) <= beta``, where "good" is: as fast as
  stable (latency vs stable), as good as stable (judge maxDrop), half the limit (latency ceiling,
  error rate), the floor plus a margin (judge minScore). A canary between "good" and the tolerated
  regression (e.g. +7% within a +15% tolerance) may go either way: the tests refute "good" and "bad",
  not "within tolerance"; the bench measures the whole operating-characteristic curve. Beta is split
  between the rules of a metric (latency maxSeconds + maxIncreasePercent, judge maxDrop + minScore) and
  between metrics (`run.BETA`): the total false rollback is at most 5%.

Methods (longer, with assumptions and the benchmark: bench/README.md):

* Latency vs stable (``max_increase_percent`` = d): histograms only reveal counts above bucket bounds,
  so the quantile is tested through the share of requests slower than a bound ``x`` (the cut): the
  largest one at or below ``(1 + d)`` x stable's quantile. The data are snapshots of both histograms
  at fixed times (every 30 s from the canary's start, `run.SNAPSHOT_SECONDS`); in each interval
  between snapshots, given how many requests each revision served and how many of all were slower
  than ``x``, the canary's slow count is hypergeometric when both revisions are alike (random routing
  makes an interval's requests exchangeable), whatever the load, the latency level or the step's
  weight. A canary slowed by ``1 + d`` has its odds of a slow request raised by ``psi``, computed
  from stable's survival function (monotone cubic in log-log inside buckets) with ``x`` and ``psi``
  taken from stable's data BEFORE the interval (stable over 10 minutes before the canary, plus its
  earlier intervals). The product over intervals of Fisher's noncentral over the central
  hypergeometric likelihood is then an exact martingale under "alike" (Fail at ``>= 1/beta``: the
  canary is slower than stable) and its inverse a supermartingale under any regression moving the
  odds at ``x`` by ``psi`` or more (Pass at ``<= alpha``). A tail guard at the next bound up can
  fail the canary and holds a Pass while it points to a regression. Assumptions: requests within an
  interval are exchangeable between revisions (pod-level batching breaks this a little: the bench
  measures it) and a regression of the tolerated size moves the odds at ``x`` by about ``psi``
  (exact for a stretch of the distribution; a regression confined to the slowest few percent, with
  coarse buckets such as vLLM/NIM's 2.5 s -> 5 s, is only partly seen).
* Latency ceiling (``max_seconds``) and error rate (``max_percent``): Wald's binomial likelihood ratio
  on the canary's share above the ceiling / of errors between ``bad = limit`` (``1 - quantile`` for
  latency) and ``good = limit / 2``, fixed in advance (no plug-in); a ceiling between bucket bounds is
  bracketed conservatively. Its counts come from Prometheus' ``increase()`` since the canary began,
  an extrapolated estimate (both counts scaled alike by up to a scrape interval's worth): the bound
  holds for the counts as estimated.
* Judge (paired 0-5 scores): exact nonparametric testing by betting on ``D = canary - stable`` per
  prompt. Pass when ``prod(1 + l (D + max_drop)) >= 1/alpha`` (refutes any distribution with a mean drop
  >= max_drop); Fail when ``prod(1 + f sign(-D)) >= 1/beta`` (refutes "canary equals stable", under
  which the sign of D is a fair coin given |D|; ``f = tanh(theta |D|)``, the Kelly bet against the
  least favourable drop of max_drop). Bets use earlier pairs only (and the Fail bet |D| itself), so
  pairs must be passed in a fixed order decided before judging (the prompts' order: concurrent
  judgements are released in it, never in order of completion, which could depend on the answers).
  ``min_score``: the same mean test on canary scores against the floor.

Never Pass without data: missing inputs (Prometheus or judge down), empty windows and too little stable
reference data are Inconclusive and the message says which. Tolerances of 0 cannot be certified by a
sequential test and are raised to a small minimum (1% latency increase, 0.05 judge points).
"""
